//! AMD SEV-SNP attestation reports and their AMD certificate chains.
