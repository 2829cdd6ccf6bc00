/* catgif evaluate: test-set accuracy, loss, per-class accuracy and the
 * confusion matrix of a checkpoint, as one JSON document. */
#include <getopt.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "checkpoint.h"
#include "commands.h"
#include "dataset.h"
#include "model.h"

#define EVALUATE_USAGE                                                                             \
	"catgif evaluate --data DIR --checkpoint FILE --out metrics.json\n"                        \
	"  evaluates FILE on DIR/test.bin; confusion_matrix rows are true classes,\n"              \
	"  columns predicted classes"

#define EVAL_BATCH 256

struct eval_result {
	double loss;
	uint32_t total, correct;
	uint32_t confusion[DATASET_CLASSES][DATASET_CLASSES];
};

static void evaluate(struct eval_result *out, const struct model *m, const struct dataset *ds)
{
	struct model_work w;
	model_work_init(&w, m, EVAL_BATCH, 0);
	memset(out, 0, sizeof *out);
	for (uint32_t s = 0; s < ds->count; s += EVAL_BATCH) {
		uint32_t n = ds->count - s < EVAL_BATCH ? ds->count - s : EVAL_BATCH;
		for (uint32_t b = 0; b < n; b++)
			model_load_u8(&w, b, ds->pixels + (size_t)(s + b) * DATASET_PIXELS);
		model_forward(m, &w, n);
		for (uint32_t b = 0; b < n; b++) {
			uint8_t y = ds->labels[s + b];
			uint32_t pred = model_argmax(&w, b);
			out->loss += model_loss(&w, b, y);
			out->correct += pred == y;
			out->confusion[y][pred]++;
		}
	}
	out->total = ds->count;
	model_work_free(&w);
}

static double round6(double v)
{
	return round(v * 1e6) / 1e6;
}

static cJSON *metrics_json(const struct eval_result *r, const struct checkpoint *ck,
                           const char *sha)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "accuracy", round6((double)r->correct / r->total));
	cJSON_AddNumberToObject(root, "loss", round6(r->loss / r->total));
	cJSON_AddNumberToObject(root, "test_images", r->total);
	cJSON_AddNumberToObject(root, "correct", r->correct);
	cJSON_AddNumberToObject(root, "checkpoint_epoch", ck->epoch);
	cJSON_AddStringToObject(root, "checkpoint_sha256", sha);
	cJSON_AddStringToObject(root, "arch", model_arch_name(ck->arch));
	cJSON_AddNumberToObject(root, "channels", ck->channels);
	cJSON_AddNumberToObject(root, "hidden", ck->hidden);
	cJSON_AddNumberToObject(root, "train_images_seen", (double)ck->images_seen);
	cJSON *per = cJSON_AddObjectToObject(root, "per_class_accuracy");
	cJSON *classes = cJSON_AddArrayToObject(root, "classes");
	cJSON *cm = cJSON_AddArrayToObject(root, "confusion_matrix");
	for (int y = 0; y < DATASET_CLASSES; y++) {
		uint32_t row = 0;
		cJSON *jrow = cJSON_CreateArray();
		for (int p = 0; p < DATASET_CLASSES; p++) {
			row += r->confusion[y][p];
			cJSON_AddItemToArray(jrow, cJSON_CreateNumber(r->confusion[y][p]));
		}
		cJSON_AddItemToArray(cm, jrow);
		cJSON_AddItemToArray(classes, cJSON_CreateString(dataset_class_names[y]));
		cJSON_AddNumberToObject(per, dataset_class_names[y],
		                        row ? round6((double)r->confusion[y][y] / row) : 0.0);
	}
	return root;
}

int cmd_evaluate(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"checkpoint", required_argument, NULL, 'c'},
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *data = NULL, *ckpath = NULL, *outpath = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'c':
			ckpath = optarg;
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'h':
			puts(EVALUATE_USAGE);
			return EXIT_OK;
		default:
			return usage_error("evaluate", EVALUATE_USAGE, "bad option");
		}
	}
	if (optind < argc)
		return usage_error("evaluate", EVALUATE_USAGE, "unexpected argument \"%s\"",
		                   argv[optind]);
	if (!data || !ckpath || !outpath)
		return usage_error("evaluate", EVALUATE_USAGE,
		                   "--data, --checkpoint and --out are required");

	struct cg_error err = {0};
	struct dataset ds = {0};
	struct checkpoint ck = {0};
	char sha[65];
	cleanup_free char *test_path = path_join(data, "test.bin");
	if (dataset_load(&ds, test_path, &err) < 0 || checkpoint_load(&ck, ckpath, &err) < 0 ||
	    sha256_file(sha, ckpath, &err) < 0) {
		dataset_free(&ds);
		return err_report(&err);
	}
	struct model m;
	checkpoint_model(&m, &ck);
	struct eval_result r;
	evaluate(&r, &m, &ds);

	cJSON *root = metrics_json(&r, &ck, sha);
	char *text = cJSON_Print(root);
	size_t len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len] = '\n', text[len + 1] = '\0';
	int rc = file_write_atomic(outpath, text, len + 1, &err);
	if (rc == 0)
		printf("evaluate: epoch %u, accuracy %.4f, loss %.4f on %u test images -> %s\n",
		       ck.epoch, (double)r.correct / r.total, r.loss / r.total, r.total, outpath);
	cJSON_free(text);
	cJSON_Delete(root);
	checkpoint_free(&ck);
	dataset_free(&ds);
	return rc < 0 ? err_report(&err) : EXIT_OK;
}
