"""The Faust side of the online system: topics, tables, agents, feeds and HTTP views.

``stream_rec.app`` discovers this package, so `faust -A stream_rec.app worker` and
`stream-rec worker` run the same agents. Agents stay thin: decode, call the core, send.
"""
