int cmd_serve(int argc, char **argv); int cmd_serve(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cmd_infer(int argc, char **argv); int cmd_infer(int argc, char **argv) { (void)argc; (void)argv; return 1; }
