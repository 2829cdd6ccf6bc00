#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *dynlib_sym(struct dynlib *lib, const char *name)
{
	if (!lib->handle) {
		lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
		if (!lib->handle) {
			fprintf(stderr, "cpipe: cannot load %s (%s); install the Debian package %s\n",
				lib->soname, dlerror(), lib->package);
			exit(3);
		}
	}
	void *sym = dlsym(lib->handle, name);
	if (!sym) {
		fprintf(stderr, "cpipe: %s has no %s; install a current %s\n", lib->soname, name,
			lib->package);
		exit(3);
	}
	return sym;
}
