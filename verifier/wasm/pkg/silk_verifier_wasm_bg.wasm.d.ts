/* tslint:disable */
/* eslint-disable */
export const memory: WebAssembly.Memory;
export const __wbg_sealedrequest_free: (a: number, b: number) => void;
export const attest: (a: any, b: number, c: number, d: number, e: number, f: number, g: number) => [number, number, number];
export const sealedrequest_bytes: (a: number) => [number, number];
export const sealedrequest_finish: (a: number) => [number, number];
export const sealedrequest_finished: (a: number) => number;
export const sealedrequest_new: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number];
export const sealedrequest_push: (a: number, b: number, c: number) => [number, number, number];
export const verifyBundle: (a: any, b: number, c: number, d: any) => [number, number, number, number];
export const verifyEvidence: (a: number, b: number, c: any) => [number, number, number, number];
export const version: () => [number, number];
export const ring_core_0_17_14__bn_mul_mont: (a: number, b: number, c: number, d: number, e: number, f: number) => void;
export const __wbindgen_malloc: (a: number, b: number) => number;
export const __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
export const __wbindgen_free: (a: number, b: number, c: number) => void;
export const __wbindgen_exn_store: (a: number) => void;
export const __externref_table_alloc: () => number;
export const __wbindgen_externrefs: WebAssembly.Table;
export const __externref_table_dealloc: (a: number) => void;
export const __wbindgen_start: () => void;
