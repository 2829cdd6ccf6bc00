/* catgif train: SGD with momentum over shuffled mini-batches, resumable
 * from a checkpoint. With --procs N, Hogwild (as PyTorch's mnist_hogwild):
 * N forked workers share parameters and velocity through one
 * MAP_SHARED|MAP_ANONYMOUS mapping and update them without locks, each on
 * its own shard of every epoch's permutation. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "checkpoint.h"
#include "commands.h"
#include "dataset.h"
#include "model.h"

#define TRAIN_USAGE                                                                                \
	"catgif train --data DIR --checkpoint FILE [--epochs 1] [--arch cnn|mlp] [--hidden 128]\n" \
	"             [--channels 8] [--lr 0.02] [--momentum 0.9] [--lr-decay 0.7] [--batch 64]\n" \
	"             [--seed 1] [--procs 1]\n"                                                    \
	"  trains --epochs more epochs on DIR/train.bin, resuming FILE when it exists (options\n"  \
	"  not given keep the checkpoint's values), else from a seeded initialisation.\n"          \
	"  Epoch e uses learning rate lr * lr-decay^(e-1); --procs N trains Hogwild-style"

#define MAX_PROCS 64

struct train_opts {
	const char *data, *checkpoint;
	long epochs, hidden, channels, batch, seed, procs;
	float lr, momentum, lr_decay;
	enum model_arch arch;
	/* which options the command line gave (the others may come from a checkpoint) */
	int have_arch, have_hidden, have_channels, have_batch, have_seed, have_lr, have_momentum,
	    have_decay;
};

/* One cache line per worker, in the shared mapping. */
struct worker_stats {
	double loss;
	uint64_t correct, seen;
	char pad[40];
};

struct shared {
	struct worker_stats stats[MAX_PROCS];
	float params[]; /* then velocity, same length */
};

/* Trains on shard [begin, end) of perm at rate lr, updating the shared
 * model in place without locks. */
static void run_worker(const struct dataset *ds, const uint32_t *perm, size_t begin, size_t end,
                       struct model *params, struct model *velocity, const struct train_opts *o,
                       float lr, struct worker_stats *st)
{
	struct model_work w;
	uint32_t batch = (uint32_t)o->batch;
	model_work_init(&w, params, batch, 1);
	cleanup_free uint8_t *labels = xmalloc(batch);
	double loss = 0;
	uint64_t correct = 0;
	for (size_t s = begin; s < end; s += batch) {
		uint32_t n = end - s < batch ? (uint32_t)(end - s) : batch;
		for (uint32_t b = 0; b < n; b++) {
			uint32_t k = perm[s + b];
			model_load_u8(&w, b, ds->pixels + (size_t)k * DATASET_PIXELS);
			labels[b] = ds->labels[k];
		}
		model_forward(params, &w, n);
		for (uint32_t b = 0; b < n; b++) {
			loss += model_loss(&w, b, labels[b]);
			correct += model_argmax(&w, b) == labels[b];
		}
		model_backward(params, &w, labels, n);
		model_sgd_step(params, velocity, &w.grad, lr, o->momentum);
	}
	st->loss = loss;
	st->correct = correct;
	st->seen = end - begin;
	model_work_free(&w);
}

/* Runs one epoch over perm with o->procs workers; their stats land in sh. */
static int run_epoch(const struct dataset *ds, const uint32_t *perm, struct model *params,
                     struct model *velocity, const struct train_opts *o, float lr,
                     struct shared *sh, struct cg_error *err)
{
	size_t n = ds->count, procs = (size_t)o->procs;
	memset(sh->stats, 0, sizeof sh->stats);
	if (procs == 1) {
		run_worker(ds, perm, 0, n, params, velocity, o, lr, &sh->stats[0]);
		return 0;
	}
	pid_t pids[MAX_PROCS];
	size_t started = 0;
	pid_t parent = getpid();
	for (; started < procs; started++) {
		pid_t pid = fork();
		if (pid < 0) {
			err_set(err, EXIT_FAIL, "fork: %s", strerror(errno));
			break;
		}
		if (pid == 0) {
			/* Workers must not outlive a parent that was killed. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			size_t k = started;
			run_worker(ds, perm, k * n / procs, (k + 1) * n / procs, params, velocity,
			           o, lr, &sh->stats[k]);
			_exit(0);
		}
		pids[started] = pid;
	}
	int failed = started < procs;
	for (size_t k = 0; k < started; k++) {
		int status = 0;
		while (waitpid(pids[k], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (!failed)
				err_set(
				    err, EXIT_FAIL, "training worker %zu (pid %d) failed: %s %d", k,
				    (int)pids[k], WIFSIGNALED(status) ? "signal" : "exit",
				    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			failed = 1;
		}
	}
	return failed ? -1 : 0;
}

static int parse_opts(struct train_opts *o, int argc, char **argv, struct cg_error *err)
{
	static const struct option opts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"checkpoint", required_argument, NULL, 'c'},
	    {"epochs", required_argument, NULL, 'e'},
	    {"arch", required_argument, NULL, 'a'},
	    {"hidden", required_argument, NULL, 'H'},
	    {"channels", required_argument, NULL, 'C'},
	    {"lr", required_argument, NULL, 'l'},
	    {"momentum", required_argument, NULL, 'm'},
	    {"lr-decay", required_argument, NULL, 'D'},
	    {"batch", required_argument, NULL, 'b'},
	    {"seed", required_argument, NULL, 's'},
	    {"procs", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	*o = (struct train_opts){.epochs = 1,
	                         .arch = MODEL_CNN,
	                         .hidden = 128,
	                         .channels = 8,
	                         .lr = 0.02f,
	                         .momentum = 0.9f,
	                         .lr_decay = 0.7f,
	                         .batch = 64,
	                         .seed = 1,
	                         .procs = 1};
	int c, rc = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data = optarg;
			break;
		case 'c':
			o->checkpoint = optarg;
			break;
		case 'e':
			rc = parse_long(&o->epochs, "--epochs", optarg, 0, 100000, err);
			break;
		case 'a':
			o->arch = model_arch_parse(optarg);
			if (!o->arch)
				rc = err_set(err, EXIT_INPUT, "--arch: \"%s\" is not cnn or mlp",
				             optarg);
			o->have_arch = 1;
			break;
		case 'H':
			rc = parse_long(&o->hidden, "--hidden", optarg, 1, MODEL_MAX_HIDDEN, err);
			o->have_hidden = 1;
			break;
		case 'C':
			rc = parse_long(&o->channels, "--channels", optarg, 1, MODEL_MAX_CHANNELS,
			                err);
			o->have_channels = 1;
			break;
		case 'l':
			rc = parse_float(&o->lr, "--lr", optarg, 1e-7f, 10.0f, err);
			o->have_lr = 1;
			break;
		case 'm':
			rc = parse_float(&o->momentum, "--momentum", optarg, 0.0f, 0.999f, err);
			o->have_momentum = 1;
			break;
		case 'D':
			rc = parse_float(&o->lr_decay, "--lr-decay", optarg, 0.01f, 1.0f, err);
			o->have_decay = 1;
			break;
		case 'b':
			rc = parse_long(&o->batch, "--batch", optarg, 1, 4096, err);
			o->have_batch = 1;
			break;
		case 's':
			rc = parse_long(&o->seed, "--seed", optarg, 0, LONG_MAX, err);
			o->have_seed = 1;
			break;
		case 'p':
			rc = parse_long(&o->procs, "--procs", optarg, 1, MAX_PROCS, err);
			break;
		case 'h':
			puts(TRAIN_USAGE);
			exit(EXIT_OK);
		default:
			return err_set(err, EXIT_INPUT, "train: bad option\nusage: %s",
			               TRAIN_USAGE);
		}
	}
	if (rc < 0)
		return -1;
	if (optind < argc)
		return err_set(err, EXIT_INPUT, "train: unexpected argument \"%s\"\nusage: %s",
		               argv[optind], TRAIN_USAGE);
	if (!o->data || !o->checkpoint)
		return err_set(err, EXIT_INPUT,
		               "train: --data and --checkpoint are required\nusage: %s",
		               TRAIN_USAGE);
	if (o->arch == MODEL_MLP && o->have_channels)
		return err_set(err, EXIT_INPUT, "train: --channels applies to --arch cnn only");
	return 0;
}

/* Resumes from an existing checkpoint: the shape must match what the
 * command line asks for; hyperparameters not given come from it. */
static int resume(struct checkpoint *ck, struct train_opts *o, struct cg_error *err)
{
	if (checkpoint_load(ck, o->checkpoint, err) < 0)
		return -1;
	const char *what = NULL;
	if (o->have_arch && o->arch != ck->arch)
		what = "--arch";
	else if (o->have_hidden && (uint32_t)o->hidden != ck->hidden)
		what = "--hidden";
	else if (o->have_channels && (uint32_t)o->channels != ck->channels)
		what = "--channels";
	if (what) {
		err_set(err, EXIT_INPUT,
		        "%s: %s differs from the checkpoint's model (%s, %u channels, hidden %u); "
		        "remove the checkpoint to start over",
		        o->checkpoint, what, model_arch_name(ck->arch), ck->channels, ck->hidden);
		checkpoint_free(ck);
		return -1;
	}
	o->arch = ck->arch, o->hidden = ck->hidden, o->channels = ck->channels;
	if (!o->have_lr)
		o->lr = ck->lr;
	if (!o->have_momentum)
		o->momentum = ck->momentum;
	if (!o->have_decay)
		o->lr_decay = ck->lr_decay;
	if (!o->have_batch)
		o->batch = ck->batch;
	if (!o->have_seed)
		o->seed = (long)ck->seed;
	printf("resuming %s at epoch %u (%llu images seen)\n", o->checkpoint, ck->epoch,
	       (unsigned long long)ck->images_seen);
	return 0;
}

/* Fills ck from the checkpoint file when it exists, else from a fresh
 * seeded initialisation. */
static int load_or_init(struct checkpoint *ck, struct train_opts *o, struct cg_error *err)
{
	struct stat st;
	if (stat(o->checkpoint, &st) == 0)
		return resume(ck, o, err);
	if (errno != ENOENT)
		return err_set(err, EXIT_INPUT, "%s: %s", o->checkpoint, strerror(errno));
	uint32_t channels = o->arch == MODEL_CNN ? (uint32_t)o->channels : 0;
	*ck = (struct checkpoint){
	    .arch = o->arch, .channels = channels, .hidden = (uint32_t)o->hidden};
	size_t n = model_param_count(ck->arch, ck->channels, ck->hidden);
	ck->params = xalloc_floats(n);
	ck->velocity = xalloc_floats(n);
	struct model m;
	checkpoint_model(&m, ck);
	model_init(&m, (uint64_t)o->seed);
	if (o->arch == MODEL_CNN)
		printf("starting %s: cnn, conv 5x5x%u, pool 2, dense %ld, 10 classes, seed %ld\n",
		       o->checkpoint, channels, o->hidden, o->seed);
	else
		printf("starting %s: mlp 784 -> %ld -> 10, seed %ld\n", o->checkpoint, o->hidden,
		       o->seed);
	return 0;
}

static int all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* Trains o->epochs epochs on ds, checkpointing after each one. */
static int train_epochs(struct checkpoint *ck, const struct dataset *ds, const struct train_opts *o,
                        struct shared *sh, struct cg_error *err)
{
	size_t n = model_param_count(ck->arch, ck->channels, ck->hidden);
	struct model params, velocity;
	model_bind(&params, ck->arch, ck->channels, ck->hidden, sh->params);
	model_bind(&velocity, ck->arch, ck->channels, ck->hidden, sh->params + n);
	memcpy(sh->params, ck->params, n * sizeof(float));
	memcpy(sh->params + n, ck->velocity, n * sizeof(float));
	cleanup_free uint32_t *perm = xmalloc(ds->count * sizeof *perm);
	for (long e = 0; e < o->epochs; e++) {
		uint32_t epoch = ck->epoch + 1;
		/* The permutation and the rate depend on (seed, epoch) only, so N
		 * epochs in one run equal N runs of one epoch each. */
		struct rng r;
		rng_seed(&r, (uint64_t)o->seed ^ (uint64_t)epoch * 0x9e3779b97f4a7c15ULL);
		for (uint32_t i = 0; i < ds->count; i++)
			perm[i] = i;
		rng_shuffle(&r, perm, ds->count);
		float lr = o->lr * powf(o->lr_decay, (float)(epoch - 1));

		double t0 = now_seconds();
		if (run_epoch(ds, perm, &params, &velocity, o, lr, sh, err) < 0)
			return -1;
		double dt = now_seconds() - t0, loss = 0;
		uint64_t correct = 0, seen = 0;
		for (long k = 0; k < o->procs; k++) {
			loss += sh->stats[k].loss;
			correct += sh->stats[k].correct;
			seen += sh->stats[k].seen;
		}
		if (!isfinite(loss) || !all_finite(sh->params, 2 * n))
			return err_set(
			    err, EXIT_FAIL,
			    "epoch %u: training diverged (parameters not finite); lower --lr "
			    "(checkpoint left as it was)",
			    epoch);
		ck->epoch = epoch;
		ck->images_seen += seen;
		ck->lr = o->lr, ck->momentum = o->momentum, ck->lr_decay = o->lr_decay;
		ck->batch = (uint32_t)o->batch, ck->procs = (uint32_t)o->procs;
		ck->seed = (uint64_t)o->seed;
		ck->train_loss = (float)(loss / (double)seen);
		ck->train_accuracy = (float)((double)correct / (double)seen);
		memcpy(ck->params, sh->params, n * sizeof(float));
		memcpy(ck->velocity, sh->params + n, n * sizeof(float));
		if (checkpoint_save(o->checkpoint, ck, err) < 0)
			return -1;
		printf("epoch %u: loss %.4f  train accuracy %.4f  lr %.4g  %.0f images/s  %.2f s"
		       "  (procs %ld)\n",
		       epoch, (double)ck->train_loss, (double)ck->train_accuracy, (double)lr,
		       (double)seen / dt, dt, o->procs);
	}
	if (o->epochs == 0)
		return checkpoint_save(o->checkpoint, ck, err);
	return 0;
}

int cmd_train(int argc, char **argv)
{
	struct train_opts o;
	struct cg_error err = {0};
	if (parse_opts(&o, argc, argv, &err) < 0)
		return err_report(&err);
	struct dataset ds;
	cleanup_free char *train_path = path_join(o.data, "train.bin");
	if (dataset_load(&ds, train_path, &err) < 0)
		return err_report(&err);
	struct checkpoint ck;
	if (load_or_init(&ck, &o, &err) < 0) {
		dataset_free(&ds);
		return err_report(&err);
	}
	size_t n = model_param_count(ck.arch, ck.channels, ck.hidden);
	size_t shlen = sizeof(struct shared) + 2 * n * sizeof(float);
	struct shared *sh =
	    mmap(NULL, shlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int rc;
	if (sh == MAP_FAILED) {
		rc = err_set(&err, EXIT_FAIL, "mmap of %zu shared bytes: %s", shlen,
		             strerror(errno));
	} else {
		rc = train_epochs(&ck, &ds, &o, sh, &err);
		munmap(sh, shlen);
	}
	if (rc == 0)
		printf("checkpoint %s: epoch %u\n", o.checkpoint, ck.epoch);
	checkpoint_free(&ck);
	dataset_free(&ds);
	return rc < 0 ? err_report(&err) : EXIT_OK;
}
