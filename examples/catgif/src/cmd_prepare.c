/* catgif prepare: IDX gz files -> compact train.bin / test.bin.
 * catgif mkfixture: IDX gz files -> a smaller set of IDX gz files. */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "dataset.h"

#define PREPARE_USAGE                                                                              \
	"catgif prepare --src DIR --out DIR [--limit N] [--test-limit N]\n"                        \
	"  reads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from --src and writes\n"        \
	"  train.bin and test.bin into --out; --limit / --test-limit keep the first N images"
#define FIXTURE_USAGE                                                                              \
	"catgif mkfixture --src DIR --out DIR [--train 2000] [--test 500]\n"                       \
	"  writes the first N train and test images of --src as IDX gz files into --out"

static const char *const idx_names[4] = {
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
};

/* DIR/NAME.gz if it exists, else DIR/NAME if that exists, else DIR/NAME.gz
 * (so the error names the file the dataset ships). */
static char *idx_path(const char *dir, const char *name)
{
	char gz[256];
	snprintf(gz, sizeof gz, "%s.gz", name);
	char *p = path_join(dir, gz);
	struct stat st;
	if (stat(p, &st) == 0)
		return p;
	char *plain = path_join(dir, name);
	if (stat(plain, &st) == 0) {
		free(p);
		return plain;
	}
	free(plain);
	return p;
}

/* Reads the train (which = 0) or test (which = 1) half of src, first limit images. */
static int read_split(struct dataset *out, const char *src, int which, long limit,
                      struct cg_error *err)
{
	cleanup_free char *images = idx_path(src, idx_names[2 * which]);
	cleanup_free char *labels = idx_path(src, idx_names[2 * which + 1]);
	if (dataset_read_idx(out, images, labels, err) < 0)
		return -1;
	if (limit > 0)
		dataset_truncate(out, (uint32_t)limit);
	return 0;
}

static void print_split(const char *what, const struct dataset *ds, const char *path)
{
	unsigned counts[DATASET_CLASSES] = {0};
	for (uint32_t i = 0; i < ds->count; i++)
		counts[ds->labels[i]]++;
	printf("%s: %u images -> %s (per class:", what, ds->count, path);
	for (int c = 0; c < DATASET_CLASSES; c++)
		printf(" %u", counts[c]);
	printf(")\n");
}

/* What prepare and mkfixture are told: where from, where to, and how many
 * train and test images (flags named by the caller). */
struct split_args {
	const char *cmd, *usage;
	const char *train_flag, *test_flag;
	long train_max, test_max;
	const char *src, *outdir;
	long ntrain, ntest;
};

/* Parses the options; 0 to go on, else the exit code to return (--help
 * printed, or a usage error reported). */
static int parse_split_args(struct split_args *a, int argc, char **argv)
{
	const struct option opts[] = {
	    {"src", required_argument, NULL, 's'}, {"out", required_argument, NULL, 'o'},
	    {a->train_flag + 2, required_argument, NULL, 'n'},
	    {a->test_flag + 2, required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},      {0},
	};
	struct cg_error err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->src = optarg;
			break;
		case 'o':
			a->outdir = optarg;
			break;
		case 'n':
			if (parse_long(&a->ntrain, a->train_flag, optarg, 1, a->train_max, &err) < 0)
				return err_report(&err);
			break;
		case 't':
			if (parse_long(&a->ntest, a->test_flag, optarg, 1, a->test_max, &err) < 0)
				return err_report(&err);
			break;
		case 'h':
			puts(a->usage);
			return EXIT_OK;
		default:
			return usage_error(a->cmd, a->usage, "bad option");
		}
	}
	if (optind < argc)
		return usage_error(a->cmd, a->usage, "unexpected argument \"%s\"", argv[optind]);
	if (!a->src || !a->outdir)
		return usage_error(a->cmd, a->usage, "--src and --out are required");
	return -1;
}

int cmd_prepare(int argc, char **argv)
{
	struct split_args a = {.cmd = "prepare", .usage = PREPARE_USAGE,
			       .train_flag = "--limit", .test_flag = "--test-limit",
			       .train_max = 10000000, .test_max = 10000000};
	int code = parse_split_args(&a, argc, argv);
	if (code >= 0)
		return code;
	const char *src = a.src, *outdir = a.outdir;
	long limit = a.ntrain, test_limit = a.ntest;
	struct cg_error err = {0};

	struct dataset train = {0}, test = {0};
	cleanup_free char *train_path = path_join(outdir, "train.bin");
	cleanup_free char *test_path = path_join(outdir, "test.bin");
	int rc = -1;
	if (read_split(&train, src, 0, limit, &err) < 0 ||
	    read_split(&test, src, 1, test_limit, &err) < 0 || dir_create(outdir, &err) < 0 ||
	    dataset_save(&train, train_path, &err) < 0 || dataset_save(&test, test_path, &err) < 0)
		goto out;
	print_split("train", &train, train_path);
	print_split("test", &test, test_path);
	rc = 0;
out:
	dataset_free(&train);
	dataset_free(&test);
	return rc < 0 ? err_report(&err) : EXIT_OK;
}

int cmd_mkfixture(int argc, char **argv)
{
	struct split_args a = {.cmd = "mkfixture", .usage = FIXTURE_USAGE,
			       .train_flag = "--train", .test_flag = "--test",
			       .train_max = 60000, .test_max = 10000, .ntrain = 2000, .ntest = 500};
	int code = parse_split_args(&a, argc, argv);
	if (code >= 0)
		return code;
	const char *src = a.src, *outdir = a.outdir;
	long ntrain = a.ntrain, ntest = a.ntest;
	struct cg_error err = {0};
	if (dir_create(outdir, &err) < 0)
		return err_report(&err);
	for (int which = 0; which < 2; which++) {
		struct dataset ds;
		if (read_split(&ds, src, which, which ? ntest : ntrain, &err) < 0)
			return err_report(&err);
		char name[2][64];
		snprintf(name[0], sizeof name[0], "%s.gz", idx_names[2 * which]);
		snprintf(name[1], sizeof name[1], "%s.gz", idx_names[2 * which + 1]);
		cleanup_free char *images = path_join(outdir, name[0]);
		cleanup_free char *labels = path_join(outdir, name[1]);
		int rc = dataset_write_idx(&ds, images, labels, &err);
		if (rc == 0)
			print_split(which ? "test" : "train", &ds, images);
		dataset_free(&ds);
		if (rc < 0)
			return err_report(&err);
	}
	return EXIT_OK;
}
