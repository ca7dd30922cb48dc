//! The policy's keys, spelled as `docs/policy.md` and error messages write them
//! (`section.key`, or `key` at the top level), so that the registry of checks
//! ([`crate::checks`]) and the policy's validation name them the same way. A test checks
//! that this list and the policy's TOML format agree in both directions.

macro_rules! keys {
    ($( $(#[$doc:meta])* $id:ident = $key:literal; )+) => {
        $( $(#[$doc])* pub const $id: &str = $key; )+
        /// Every key, in the order `docs/policy.md` lists them.
        pub const ALL: &[&str] = &[$($id),+];
    };
}

keys! {
    /// Accept silk's simulated TEE.
    ALLOW_SIMULATED = "allow_simulated";
    /// Digests of the development roots whose simulated evidence is accepted.
    SIMULATED_ROOTS = "simulated_roots";

    /// The `[snp]` section itself.
    SNP = "snp";
    /// Accepted SEV-SNP launch measurements.
    SNP_MEASUREMENTS = "snp.measurements";
    /// Accept any SEV-SNP measurement.
    SNP_ALLOW_ANY_MEASUREMENT = "snp.allow_any_measurement";
    /// Accept debuggable SEV-SNP guests.
    SNP_ALLOW_DEBUG = "snp.allow_debug";
    /// Minimum reported TCB.
    SNP_MIN_TCB = "snp.min_tcb";
    /// Exact REPORT_DATA.
    SNP_REPORT_DATA = "snp.report_data";
    /// Exact HOST_DATA.
    SNP_HOST_DATA = "snp.host_data";
    /// Accept guests that may run with SMT.
    SNP_ALLOW_SMT = "snp.allow_smt";
    /// Accept guests whose policy allows a migration agent.
    SNP_ALLOW_MIGRATION_AGENT = "snp.allow_migration_agent";
    /// Require the SINGLE_SOCKET guest policy bit.
    SNP_REQUIRE_SINGLE_SOCKET = "snp.require_single_socket";
    /// The least privileged VMPL accepted.
    SNP_MAX_VMPL = "snp.max_vmpl";
    /// Accepted ID-key digests.
    SNP_ID_KEY_DIGESTS = "snp.id_key_digests";
    /// Accepted author-key digests.
    SNP_AUTHOR_KEY_DIGESTS = "snp.author_key_digests";
    /// Minimum guest SVN.
    SNP_MIN_GUEST_SVN = "snp.min_guest_svn";
    /// Accepted product lines.
    SNP_PRODUCTS = "snp.products";

    /// The `[tdx]` section itself.
    TDX = "tdx";
    /// Accepted TD measurements (MRTD and RTMRs).
    TDX_MEASUREMENTS = "tdx.measurements";
    /// Accept any TD measurement.
    TDX_ALLOW_ANY_MEASUREMENT = "tdx.allow_any_measurement";
    /// Accept debuggable TDs.
    TDX_ALLOW_DEBUG = "tdx.allow_debug";
    /// Accepted TCB statuses.
    TDX_ALLOWED_TCB_STATUSES = "tdx.allowed_tcb_statuses";
    /// Accepted Intel advisory ids.
    TDX_ALLOWED_ADVISORY_IDS = "tdx.allowed_advisory_ids";
    /// Minimum TEE_TCB_SVN.
    TDX_MIN_TEE_TCB_SVN = "tdx.min_tee_tcb_svn";
    /// Exact REPORT_DATA.
    TDX_REPORT_DATA = "tdx.report_data";
    /// Exact MRCONFIGID.
    TDX_MR_CONFIG_ID = "tdx.mr_config_id";
    /// Exact MROWNER.
    TDX_MR_OWNER = "tdx.mr_owner";
    /// Exact MROWNERCONFIG.
    TDX_MR_OWNER_CONFIG = "tdx.mr_owner_config";
    /// Accepted TDX module measurements.
    TDX_MR_SEAM = "tdx.mr_seam";
    /// Oldest acceptable collateral.
    TDX_MAX_COLLATERAL_AGE = "tdx.max_collateral_age";

    /// The `[sgx]` section itself.
    SGX = "sgx";
    /// Accepted MRENCLAVE values.
    SGX_MR_ENCLAVE = "sgx.mr_enclave";
    /// Accepted MRSIGNER values.
    SGX_MR_SIGNER = "sgx.mr_signer";
    /// Accept any MRENCLAVE.
    SGX_ALLOW_ANY_MEASUREMENT = "sgx.allow_any_measurement";
    /// Accept debug enclaves.
    SGX_ALLOW_DEBUG = "sgx.allow_debug";
    /// Minimum ISV SVN.
    SGX_MIN_ISV_SVN = "sgx.min_isv_svn";
    /// Accepted TCB statuses.
    SGX_ALLOWED_TCB_STATUSES = "sgx.allowed_tcb_statuses";
    /// Accepted Intel advisory ids.
    SGX_ALLOWED_ADVISORY_IDS = "sgx.allowed_advisory_ids";
    /// Exact REPORT_DATA.
    SGX_REPORT_DATA = "sgx.report_data";
    /// Oldest acceptable collateral.
    SGX_MAX_COLLATERAL_AGE = "sgx.max_collateral_age";

    /// The `[gpu]` section itself.
    GPU = "gpu";
    /// The CVM must present GPU evidence.
    GPU_REQUIRED = "gpu.required";
    /// The exact number of GPUs.
    GPU_COUNT = "gpu.count";
    /// Accepted GPU architectures.
    GPU_ARCHITECTURES = "gpu.architectures";
    /// Minimum driver version.
    GPU_MIN_DRIVER_VERSION = "gpu.min_driver_version";
    /// Minimum VBIOS version.
    GPU_MIN_VBIOS_VERSION = "gpu.min_vbios_version";
    /// Accept evidence without revocation data.
    GPU_ALLOW_MISSING_REVOCATION = "gpu.allow_missing_revocation";
    /// Accept evidence whose RIMs are not at hand.
    GPU_ALLOW_MISSING_RIMS = "gpu.allow_missing_rims";
    /// Accept GPUs in protected-PCIe mode.
    GPU_ALLOW_PROTECTED_PCIE = "gpu.allow_protected_pcie";

    /// The `[runtime]` section itself.
    RUNTIME = "runtime";
    /// Accepted model identities.
    RUNTIME_MODELS = "runtime.models";
    /// Accepted evidence providers.
    RUNTIME_EVIDENCE_PROVIDERS = "runtime.evidence_providers";
    /// Accepted GPU policies (SHA-256, or `none`).
    RUNTIME_GPU_POLICIES = "runtime.gpu_policies";
    /// Accepted payout addresses.
    RUNTIME_PAYOUT_ADDRESSES = "runtime.payout_addresses";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    /// The TOML that sets `key` to a value no key accepts (a list holding a list; a number
    /// for a section), so that parsing fails for the value's type if, and only if, the
    /// policy knows the key; an unknown key fails as unknown.
    fn probe(key: &str) -> String {
        match key.split_once('.') {
            Some((section, field)) => format!("[{section}]\n{field} = [[]]\n"),
            None if [SNP, TDX, SGX, GPU, RUNTIME].contains(&key) => format!("{key} = 5\n"),
            None => format!("{key} = [[]]\n"),
        }
    }

    #[test]
    fn every_key_is_one_the_policy_knows() {
        for key in ALL {
            let e = Policy::from_toml(&probe(key)).expect_err(key).to_string();
            assert!(!e.contains("unknown field"), "{key}: {e}");
        }
        let e = Policy::from_toml(&probe("snp.allow_debugg")).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    /// The keys serde expects, from its "unknown field `x`, expected one of `a`, `b`"
    /// message for a section (or the top level when `section` is empty).
    fn expected_fields(section: &str) -> Vec<String> {
        let toml = if section.is_empty() {
            "no_such_key = 1\n".to_owned()
        } else {
            format!("[{section}]\nno_such_key = 1\n")
        };
        let e = Policy::from_toml(&toml).unwrap_err().to_string();
        let list = e.split("expected one of").nth(1).expect(&e);
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(|field| match section {
                "" => field.to_owned(),
                s => format!("{s}.{field}"),
            })
            .collect()
    }

    #[test]
    fn every_policy_key_is_listed() {
        let mut known: Vec<String> = ["", SNP, TDX, SGX, GPU, RUNTIME]
            .iter()
            .flat_map(|s| expected_fields(s))
            .collect();
        known.sort();
        let mut listed: Vec<String> = ALL.iter().map(|k| (*k).to_owned()).collect();
        listed.sort();
        assert_eq!(known, listed);
    }
}
