"""One module per `stream-rec` subcommand; each exposes ``register(subparsers)``."""
