"""A stop signal reaches the waiting main thread whichever thread the kernel picks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The main thread blocks in StopSignals.wait(); another thread, once it sees the
# main thread blocked there, sends SIGTERM to itself: the case where gRPC's
# threads catch the signal and a plain Event.wait() never woke up.
_SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading, time
    from msgarchive_server.process.signals import StopSignals

    def main_is_waiting():
        frame = sys._current_frames().get(threading.main_thread().ident)
        while frame is not None:
            if frame.f_code.co_name == "wait" and "signals" in frame.f_code.co_filename:
                return True
            frame = frame.f_back
        return False

    def signal_this_thread():
        deadline = time.monotonic() + 60
        while not main_is_waiting():
            if time.monotonic() > deadline:
                raise SystemExit("the main thread never waited")
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    with StopSignals() as signals:
        threading.Thread(target=signal_this_thread, daemon=True).start()
        print(signals.wait())
    """
)


def test_a_signal_taken_by_another_thread_wakes_the_main_thread() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "15"), done.stderr


def test_the_previous_handlers_come_back() -> None:
    script = textwrap.dedent(
        """
        import signal
        from msgarchive_server.process.signals import StopSignals
        before = signal.getsignal(signal.SIGTERM)
        with StopSignals():
            during = signal.getsignal(signal.SIGTERM)
        print(before is signal.getsignal(signal.SIGTERM), during is not before)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "True True"), done.stderr
