/*
 * csr: `certsync csr` (DESIGN §4.2) — a new private key and a certificate signing request
 * for certificates the customer buys elsewhere and then uploads.
 *
 *   certsync csr --host H [--host H ...] [--key-type ec-p256|ec-p384|rsa-2048|rsa-3072]
 *                --key-out F --csr-out F
 *
 * Promises: every host is checked as a hostname (certsync/hostname.h: the same rules as
 * the configuration; written lowercase); the key (default ec-p256) is written to a file
 * that did not exist, created 0600 with O_EXCL, and is never printed or logged; its
 * buffers are cleansed. The CSR is PEM, signed with SHA-256, subject CN = the first host
 * (when it fits the 64-character limit of a CN; otherwise an empty subject), one SAN
 * dNSName per host, wildcards allowed. Neither file is ever overwritten; when either
 * cannot be written, neither is left behind. A summary goes to stdout.
 */
#ifndef EDGETLS_CS_CSR_H
#define EDGETLS_CS_CSR_H

/* argv[0] is the command name ("csr"). Returns the exit status: 0 written, 1 failed
 * (a file exists, I/O, OpenSSL), 2 usage (unknown option, missing or invalid argument). */
int csr_main(int argc, char **argv);

#endif
