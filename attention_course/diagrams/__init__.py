"""Architecture diagrams, drawn with matplotlib from code (reproducible, no image files).

One module per diagram; :mod:`attention_course.diagrams._draw` holds the shared primitives
(boxes, arrows, a blank canvas). Each diagram function returns the matplotlib ``Figure``.
"""
