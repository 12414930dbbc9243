"""chainload-convert: systemd .socket and .service units to run scripts.

Not a link of a chain: it reads unit files and writes scripts whose one
chain the driver runs. syntax reads systemd's file and word syntax, units
finds and loads units (search path, templates, drop-ins, specifiers),
table says what happens to each directive, emit builds the chain, main is
the command line.
"""
