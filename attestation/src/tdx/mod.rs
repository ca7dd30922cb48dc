//! Intel TDX and SGX DCAP quotes, verified with their collateral through `dcap-qvl`.
