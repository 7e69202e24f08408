"""Command-line front ends shared by the top-level scripts (the options every script takes, skels2desc). Imported only by scripts."""
