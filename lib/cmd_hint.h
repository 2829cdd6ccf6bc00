/* What is near a command that is not found: another name for it on this
 * system (python -> python3) and the Debian package that adds the name. */
#ifndef CPIPE_LIB_CMD_HINT_H
#define CPIPE_LIB_CMD_HINT_H

/* "" when nothing is near, else text to append to a "command not found"
 * message, starting with "; ": "; the host has python3 (/usr/bin/python3):
 * use \"python3\" in the stage's command, or install Debian's package
 * python-is-python3, which provides \"python\"". `path` is the PATH the
 * command was looked up in. Caller frees. Async-signal-unsafe (allocates),
 * fine in a child before exec. */
char *cmd_hint(const char *name, const char *path);

#endif
