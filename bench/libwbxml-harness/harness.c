/*
 * libwbxml round-trip benchmark harness (baseline for the scomo WBXML codec).
 *
 * Usage:  harness <iterations> <file1.xml> [file2.xml ...]
 *
 * Every file is read into memory once. Then, for <iterations> rounds, each
 * document is converted XML -> WBXML -> XML in-process with libwbxml's
 * converter API. One line is printed on stdout:
 *
 *     bytes=<XML input bytes processed> seconds=<wall seconds> mb_s=<MB/s>
 *
 * (MB = 1e6 bytes; bytes = iterations * sum of input file sizes.)
 *
 * Options are fixed and match `xml2wbxml -n -v 1.2` followed by
 * `wbxml2xml -m 0`:
 *   XML->WBXML : WBXML version 1.2 (0x02), no string table, ignorable
 *                whitespace dropped (library default), numeric public id.
 *   WBXML->XML : compact generation (no indentation / newlines), whitespace
 *                handling = library default.
 *
 * Before timing, every file is converted once and checked; any libwbxml error
 * aborts with exit status 1 (we never time failing conversions).
 *
 * Build:  make            (see Makefile), or
 *         gcc -O2 -Wall $(pkg-config --cflags libwbxml2) -o harness harness.c \
 *             $(pkg-config --libs libwbxml2)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wbxml/wbxml.h>
#include <wbxml/wbxml_conv.h>
#include <wbxml/wbxml_errors.h>

/* Exported by libwbxml2 but not declared in its installed headers. Results of
 * wbxml_conv_*_run() are allocated with wbxml_malloc(). */
extern void wbxml_free(void *memblock);

struct doc {
    const char *path;
    unsigned char *data; /* NUL-terminated copy of the file */
    size_t len;          /* length without the terminating NUL */
};

static int load_file(const char *path, struct doc *d)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "harness: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap + 1);
    if (buf == NULL) {
        fclose(f);
        fprintf(stderr, "harness: out of memory\n");
        return -1;
    }
    for (;;) {
        if (len == cap) {
            cap *= 2;
            unsigned char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                fprintf(stderr, "harness: out of memory\n");
                return -1;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "harness: read error on %s\n", path);
                free(buf);
                fclose(f);
                return -1;
            }
            break;
        }
    }
    fclose(f);
    if (len == 0) {
        fprintf(stderr, "harness: %s is empty\n", path);
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    d->path = path;
    d->data = buf;
    d->len = len;
    return 0;
}

/* One XML -> WBXML -> XML round trip. Returns 0 on success. */
static int round_trip(WBXMLConvXML2WBXML *enc, WBXMLConvWBXML2XML *dec,
                      const struct doc *d, WB_ULONG *wbxml_len_out,
                      WB_ULONG *xml_len_out)
{
    WB_UTINY *wbxml = NULL, *xml = NULL;
    WB_ULONG wbxml_len = 0, xml_len = 0;
    WBXMLError ret;

    ret = wbxml_conv_xml2wbxml_run(enc, (WB_UTINY *) d->data, (WB_ULONG) d->len,
                                   &wbxml, &wbxml_len);
    if (ret != WBXML_OK) {
        fprintf(stderr, "harness: %s: xml2wbxml failed: %s\n", d->path,
                (const char *) wbxml_errors_string(ret));
        if (wbxml != NULL)
            wbxml_free(wbxml);
        return -1;
    }

    ret = wbxml_conv_wbxml2xml_run(dec, wbxml, wbxml_len, &xml, &xml_len);
    wbxml_free(wbxml);
    if (ret != WBXML_OK) {
        fprintf(stderr, "harness: %s: wbxml2xml failed: %s\n", d->path,
                (const char *) wbxml_errors_string(ret));
        if (xml != NULL)
            wbxml_free(xml);
        return -1;
    }
    wbxml_free(xml);

    if (wbxml_len_out != NULL)
        *wbxml_len_out = wbxml_len;
    if (xml_len_out != NULL)
        *xml_len_out = xml_len;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <iterations> <file1.xml> [file2.xml ...]\n", argv[0]);
        return 2;
    }

    char *end = NULL;
    errno = 0;
    unsigned long long iterations = strtoull(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || iterations == 0) {
        fprintf(stderr, "harness: bad iteration count '%s'\n", argv[1]);
        return 2;
    }

    int ndocs = argc - 2;
    struct doc *docs = calloc((size_t) ndocs, sizeof(*docs));
    if (docs == NULL) {
        fprintf(stderr, "harness: out of memory\n");
        return 1;
    }
    unsigned long long round_bytes = 0;
    for (int i = 0; i < ndocs; i++) {
        if (load_file(argv[i + 2], &docs[i]) != 0)
            return 1;
        round_bytes += docs[i].len;
    }

    WBXMLConvXML2WBXML *enc = NULL;
    WBXMLConvWBXML2XML *dec = NULL;
    if (wbxml_conv_xml2wbxml_create(&enc) != WBXML_OK ||
        wbxml_conv_wbxml2xml_create(&dec) != WBXML_OK) {
        fprintf(stderr, "harness: cannot create libwbxml converters\n");
        return 1;
    }
    /* = xml2wbxml -n -v 1.2 */
    wbxml_conv_xml2wbxml_set_version(enc, WBXML_VERSION_12);
    wbxml_conv_xml2wbxml_disable_string_table(enc);
    /* = wbxml2xml -m 0 */
    wbxml_conv_wbxml2xml_set_gen_type(dec, WBXML_GEN_XML_COMPACT);
    wbxml_conv_wbxml2xml_set_indent(dec, 0);

    /* Validation / warm-up pass (not timed). */
    for (int i = 0; i < ndocs; i++) {
        WB_ULONG wl = 0, xl = 0;
        if (round_trip(enc, dec, &docs[i], &wl, &xl) != 0)
            return 1;
        fprintf(stderr, "harness: %s: xml=%zu wbxml=%lu xml_out=%lu\n",
                docs[i].path, docs[i].len, (unsigned long) wl, (unsigned long) xl);
    }

    double t0 = now_seconds();
    for (unsigned long long it = 0; it < iterations; it++) {
        for (int i = 0; i < ndocs; i++) {
            if (round_trip(enc, dec, &docs[i], NULL, NULL) != 0)
                return 1;
        }
    }
    double secs = now_seconds() - t0;

    unsigned long long total = round_bytes * iterations;
    double mb_s = secs > 0.0 ? ((double) total / 1e6) / secs : 0.0;
    printf("bytes=%llu seconds=%.6f mb_s=%.3f\n", total, secs, mb_s);

    wbxml_conv_xml2wbxml_destroy(enc);
    wbxml_conv_wbxml2xml_destroy(dec);
    for (int i = 0; i < ndocs; i++)
        free(docs[i].data);
    free(docs);
    return 0;
}
