import signal
import sys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a SIGTERM while the CLI is imported: a Ctrl-C, as after


signal.signal(signal.SIGTERM, _interrupt)
try:
    from .cli import main
except KeyboardInterrupt:
    print("Error: interrupted before anything was sent", file=sys.stderr)
    sys.exit(4)  # ExitStatus.INTERRUPTED

main()
