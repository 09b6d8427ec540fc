import sys

from attention_course.doctor import main

sys.exit(main())
