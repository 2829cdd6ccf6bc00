/* gifcheck [-o OUT.pgm] FILE...: decodes each GIF with giflib and prints
 * "FILE WIDTHxHEIGHT IMAGES COLORS"; with -o, also writes the first image
 * of the last FILE as a PGM of palette gray levels. Exits 1 if any fails. */
#include <stdio.h>
#include <string.h>

#include <gif_lib.h>

static int write_pgm(const char *path, const GifFileType *gif)
{
	const SavedImage *im = &gif->SavedImages[0];
	const ColorMapObject *cmap =
	    im->ImageDesc.ColorMap ? im->ImageDesc.ColorMap : gif->SColorMap;
	FILE *f = fopen(path, "wb");
	if (!f || !cmap)
		return -1;
	int w = im->ImageDesc.Width, h = im->ImageDesc.Height;
	fprintf(f, "P5\n%d %d\n255\n", w, h);
	for (long i = 0; i < (long)w * h; i++)
		fputc(cmap->Colors[im->RasterBits[i] % cmap->ColorCount].Red, f);
	return fclose(f);
}

int main(int argc, char **argv)
{
	int status = 0, first = 1;
	const char *pgm = NULL;
	if (argc > 2 && !strcmp(argv[1], "-o")) {
		pgm = argv[2];
		first = 3;
	}
	for (int i = first; i < argc; i++) {
		int err = 0;
		GifFileType *gif = DGifOpenFileName(argv[i], &err);
		if (!gif || DGifSlurp(gif) == GIF_ERROR || gif->ImageCount < 1) {
			const char *why = GifErrorString(gif ? gif->Error : err);
			fprintf(stderr, "gifcheck: %s: %s\n", argv[i], why ? why : "cannot decode");
			if (gif)
				DGifCloseFile(gif, &err);
			status = 1;
			continue;
		}
		printf("%s %dx%d %d %d\n", argv[i], gif->SWidth, gif->SHeight, gif->ImageCount,
		       gif->SColorMap ? gif->SColorMap->ColorCount : 0);
		if (pgm && i == argc - 1 && write_pgm(pgm, gif) < 0) {
			fprintf(stderr, "gifcheck: %s: cannot write\n", pgm);
			status = 1;
		}
		DGifCloseFile(gif, &err);
	}
	return status;
}
