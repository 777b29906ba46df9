#include "csr.h"

#include "afile.h"
#include "x509u.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hostname.h"

#include "banned.h"

/* More SANs than any CA accepts (Let's Encrypt: 100). */
#define CSR_MAX_HOSTS 100
/* ub-common-name (RFC 5280 appendix A): a longer host goes in the SAN only. */
#define CN_MAX 64

struct key_type {
	const char *name;
	const char *curve; /* NULL: RSA */
	size_t bits;
};

static const struct key_type key_types[] = {
    {"ec-p256", "P-256", 0},
    {"ec-p384", "P-384", 0},
    {"rsa-2048", NULL, 2048},
    {"rsa-3072", NULL, 3072},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: certsync csr --host H [--host H ...] "
	           "[--key-type ec-p256|ec-p384|rsa-2048|rsa-3072] --key-out FILE --csr-out "
	           "FILE\n");
}

static void ossl_err(const char *what)
{
	unsigned long e = ERR_peek_last_error();

	fprintf(stderr, "certsync csr: %s: %s\n", what,
	        e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "OpenSSL error");
	ERR_clear_error();
}

static EVP_PKEY *gen_key(const struct key_type *kt)
{
	if (kt->curve)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", kt->curve);
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", kt->bits);
}

static X509_REQ *build_csr(char hosts[][CS_HOSTNAME_MAX + 1], size_t n, EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new(), *ret = NULL;
	const char **names = calloc(n, sizeof(*names));
	int with_cn = strlen(hosts[0]) <= CN_MAX;

	if (!req || !names || !X509_REQ_set_version(req, X509_REQ_VERSION_1))
		goto out;
	if (with_cn &&
	    !X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
	                                MBSTRING_ASC, (const unsigned char *)hosts[0], -1, -1, 0))
		goto out;
	/* RFC 5280 §4.2.1.6: with an empty subject the SAN extension is critical. */
	for (size_t i = 0; i < n; i++)
		names[i] = hosts[i];
	if (x509u_req_add_dns_names(req, names, n, !with_cn) < 0 ||
	    !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	ret = req;
	req = NULL;
out:
	free(names);
	X509_REQ_free(req);
	return ret;
}

static int create_excl(const char *path, mode_t mode, const char *what, const char *opt)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0 && errno == EEXIST)
		fprintf(stderr,
		        "certsync csr: refusing to overwrite %s: the file exists (the %s goes "
		        "to a new file: remove it or choose another %s)\n",
		        path, what, opt);
	else if (fd < 0)
		fprintf(stderr, "certsync csr: cannot create %s: %s\n", path, strerror(errno));
	return fd;
}

/* Writes the key and the CSR to files that must not exist; on any failure neither file
 * is left behind. Returns 0 or -1 (reported). */
static int write_files(const char *key_out, const char *key_pem, size_t key_len,
                       const char *csr_out, const char *csr_pem, size_t csr_len)
{
	int kfd = -1, cfd = -1, made_key = 0, made_csr = 0, ret = -1;
	const char *failed = NULL;

	kfd = create_excl(key_out, 0600, "private key", "--key-out");
	if (kfd < 0)
		goto out;
	made_key = 1;
	cfd = create_excl(csr_out, 0644, "CSR", "--csr-out");
	if (cfd < 0)
		goto out;
	made_csr = 1;
	if (afile_write_fd(kfd, key_pem, key_len) < 0 || fsync(kfd) < 0)
		failed = key_out;
	else if (afile_write_fd(cfd, csr_pem, csr_len) < 0 || fsync(cfd) < 0)
		failed = csr_out;
	if (failed) {
		fprintf(stderr, "certsync csr: cannot write %s: %s\n", failed, strerror(errno));
		goto out;
	}
	if (close(kfd) < 0) {
		kfd = -1;
		fprintf(stderr, "certsync csr: cannot write %s: %s\n", key_out, strerror(errno));
		goto out;
	}
	kfd = -1;
	if (close(cfd) < 0) {
		cfd = -1;
		fprintf(stderr, "certsync csr: cannot write %s: %s\n", csr_out, strerror(errno));
		goto out;
	}
	cfd = -1;
	ret = 0;
out:
	if (kfd >= 0)
		close(kfd);
	if (cfd >= 0)
		close(cfd);
	if (ret < 0 && made_key)
		unlink(key_out);
	if (ret < 0 && made_csr)
		unlink(csr_out);
	return ret;
}

int csr_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'H'},    {"key-type", required_argument, NULL, 't'},
	    {"key-out", required_argument, NULL, 'k'}, {"csr-out", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	static char hosts[CSR_MAX_HOSTS][CS_HOSTNAME_MAX + 1];
	const struct key_type *kt = &key_types[0];
	const char *key_out = NULL, *csr_out = NULL, *type_name = NULL;
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	BIO *kbio = NULL, *cbio = NULL;
	char *kpem = NULL, *cpem = NULL, err[256];
	long klen = 0, clen;
	size_t nhosts = 0, i, j;
	int c, ret = 2;

	optind = 0; /* glibc: a full reset, so csr_main can run more than once */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (nhosts == CSR_MAX_HOSTS) {
				fprintf(stderr, "certsync csr: at most %d --host\n", CSR_MAX_HOSTS);
				goto out;
			}
			if (cs_hostname_normalize(optarg, hosts[nhosts], err, sizeof(err)) < 0) {
				fprintf(stderr, "certsync csr: --host: %s\n", err);
				goto out;
			}
			for (j = 0; j < nhosts; j++)
				if (strcmp(hosts[j], hosts[nhosts]) == 0) {
					fprintf(stderr, "certsync csr: --host %s given twice\n",
					        hosts[j]);
					goto out;
				}
			nhosts++;
			break;
		case 't':
			type_name = optarg;
			break;
		case 'k':
			key_out = optarg;
			break;
		case 'c':
			csr_out = optarg;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		case ':':
			fprintf(stderr, "certsync csr: %s needs an argument\n", argv[optind - 1]);
			usage(stderr);
			goto out;
		default:
			fprintf(stderr, "certsync csr: unknown option %s\n", argv[optind - 1]);
			usage(stderr);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "certsync csr: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		goto out;
	}
	if (nhosts == 0 || !key_out || !csr_out || !*key_out || !*csr_out) {
		fprintf(stderr, "certsync csr: %s is required\n",
		        nhosts == 0               ? "--host"
		        : (!key_out || !*key_out) ? "--key-out"
		                                  : "--csr-out");
		usage(stderr);
		goto out;
	}
	if (strcmp(key_out, csr_out) == 0) {
		fprintf(stderr, "certsync csr: --key-out and --csr-out name the same file\n");
		goto out;
	}
	if (type_name) {
		kt = NULL;
		for (i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
			if (strcmp(type_name, key_types[i].name) == 0)
				kt = &key_types[i];
		if (!kt) {
			fprintf(stderr,
			        "certsync csr: unknown --key-type \"%s\"; expected ec-p256, "
			        "ec-p384, rsa-2048 or rsa-3072\n",
			        type_name);
			goto out;
		}
	}

	ret = 1;
	key = gen_key(kt);
	if (!key) {
		ossl_err("cannot generate the key");
		goto out;
	}
	req = build_csr(hosts, nhosts, key);
	if (!req) {
		ossl_err("cannot build the CSR");
		goto out;
	}
	/* The key's PEM lives in secure memory, cleared when freed. */
	kbio = BIO_new(BIO_s_secmem());
	cbio = BIO_new(BIO_s_mem());
	if (!kbio || !cbio || !PEM_write_bio_PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509_REQ(cbio, req)) {
		ossl_err("cannot encode the key or the CSR");
		goto out;
	}
	klen = BIO_get_mem_data(kbio, &kpem);
	clen = BIO_get_mem_data(cbio, &cpem);
	if (klen <= 0 || clen <= 0) {
		fprintf(stderr, "certsync csr: cannot encode the key or the CSR\n");
		goto out;
	}
	if (write_files(key_out, kpem, (size_t)klen, csr_out, cpem, (size_t)clen) < 0)
		goto out;

	printf("wrote the private key to %s (%s, mode 0600; keep it: it is uploaded with the "
	       "certificate)\n",
	       key_out, kt->name);
	printf("wrote the CSR to %s (SHA-256, subject %s%s)\n", csr_out,
	       strlen(hosts[0]) <= CN_MAX ? "CN=" : "empty: the first host is longer than 64",
	       strlen(hosts[0]) <= CN_MAX ? hosts[0] : " characters");
	printf("names:");
	for (i = 0; i < nhosts; i++)
		printf("%s %s", i ? "," : "", hosts[i]);
	printf("\n");
	ret = 0;
out:
	if (kpem && klen > 0)
		OPENSSL_cleanse(kpem, (size_t)klen);
	BIO_free(kbio);
	BIO_free(cbio);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}
