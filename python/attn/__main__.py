"""``python -m attn <command> ...`` runs the ``attn`` command's own C++ code
(tools/attn: the same parser, output and exit codes), e.g.

    python -m attn demo            the notes' "Your journey starts with one step"
    python -m attn demo --json
    python -m attn --help

Only the subcommands that need nothing beyond the library are built in
(``demo``); the others are in the C++ ``attn`` tool.
"""

import sys

from . import _core


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    sys.stdout.flush()  # the C++ code writes to the same file descriptors
    sys.stderr.flush()
    return _core.run_command(["attn"] + [str(a) for a in args])


if __name__ == "__main__":
    sys.exit(main())
