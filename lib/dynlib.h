/* Shared libraries loaded on first use. libcurl and libarchive (and the
 * three dozen libraries they pull in) cost more to map and relocate at
 * every start than a local pipeline takes to run, yet only the Docker
 * runtime and http health checks use them; lib/lazy_*.c define their
 * functions as thin forwards to the real ones, resolved here once. */
#ifndef CPIPE_LIB_DYNLIB_H
#define CPIPE_LIB_DYNLIB_H

struct dynlib {
	const char *soname;  /* e.g. "libcurl.so.4" */
	const char *package; /* the Debian package that ships it */
	void *handle;
};

/* The address of `name` in `lib`, loading it first if needed. A missing
 * library or symbol is an installation error: it aborts with a message
 * naming the package to install. Not thread-safe by itself: callers
 * resolve under pthread_once. */
void *dynlib_sym(struct dynlib *lib, const char *name);

/* The forwards of lib/lazy_*.c, for their X-macro tables (return type,
 * name, parameters, arguments): each file has a `real` struct of pointers,
 * a pthread_once_t `once` and a `load` that fills `real`. */
#define DYNLIB_FORWARD(ret, name, params, args)                                                   \
	ret name params                                                                           \
	{                                                                                          \
		pthread_once(&once, load);                                                         \
		return real.name args;                                                             \
	}
#define DYNLIB_FORWARD_VOID(ret, name, params, args)                                              \
	ret name params                                                                           \
	{                                                                                          \
		pthread_once(&once, load);                                                         \
		real.name args;                                                                    \
	}

#endif
