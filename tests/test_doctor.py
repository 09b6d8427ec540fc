"""`python -m attention_course doctor` reports OK/FAIL lines and its exit code follows them."""

import io
import subprocess
import sys

import attention_course.attention
from attention_course import doctor


def test_doctor_passes_on_this_installation():
    result = subprocess.run([sys.executable, "-m", "attention_course", "doctor"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("versions", "threads", "jupyter kernel", "numerical self-test"):
        assert f"OK    {name}:" in result.stdout
    assert "torch " in result.stdout and "FAIL" not in result.stdout


def test_a_failing_check_prints_fail_and_returns_false():
    def broken():
        raise RuntimeError("no GPU needed, but this check is broken")

    out = io.StringIO()
    assert doctor.run_checks({"fine": lambda: "ok", "broken": broken}, out=out) is False
    text = out.getvalue()
    assert "OK    fine: ok" in text
    assert "FAIL  broken: RuntimeError: no GPU needed" in text


def test_self_test_catches_a_wrong_attention(monkeypatch):
    def unscaled(q, k, v, mask=None, **kwargs):  # forgets 1/sqrt(d_k)
        scores = (q @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        return weights @ v, weights

    monkeypatch.setattr(attention_course.attention, "scaled_dot_product_attention", unscaled)
    out = io.StringIO()
    assert doctor.run_checks({"numerical self-test": doctor._self_test}, out=out) is False
    assert "FAIL  numerical self-test" in out.getvalue()


def test_main_exit_code_follows_the_checks(monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", {"bad": lambda: 1 / 0})
    assert doctor.main(["doctor"]) == 1
