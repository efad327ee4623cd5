"""The ha-elector sidecar of ActivePassive pods: its loop (elector.py) and its command
(`haoperator elect`, command.py). Its decisions are core/election.py's."""
