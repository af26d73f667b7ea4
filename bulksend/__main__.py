"""Entry point for ``python -m bulksend``."""

from bulksend.cli import main

if __name__ == "__main__":
    main()
