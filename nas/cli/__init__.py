"""The command line's parts: flags built from the config classes (:mod:`.flags`) and the
commands (:mod:`.commands`); ``search.py`` wires them together."""
