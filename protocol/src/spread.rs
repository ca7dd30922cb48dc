//! Spread requests: one sealed request that any one of K verified workers can open, so a
//! router may balance load among them yet cannot aim a chosen user at a chosen worker
//! (Apple Private Cloud Compute calls this non-targetability).
//!
//! The body is sealed once under a fresh content key (AES-256-GCM, used for this one
//! message, so a zero nonce is safe); the content key is HPKE-sealed (RFC 9180 base mode,
//! the suite of [`crate::seal`]) to each worker's attested key, with the list of all
//! recipients' claims digests as associated data, so no entry can be moved to another
//! request or set. The answer's stream keys come from the content key through HKDF-SHA256:
//! only the client and the K workers hold it, and the client accepts one answer and one
//! receipt per request. `docs/protocol.md` gives the layout.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::seal::{
    export_keys, EnclaveKeys, Kem, PublicKey, SealError, StreamOpener, StreamSealer,
};

/// Wire version of a spread request.
pub const VERSION: u8 = 2;
/// Most workers one request is spread over.
pub const MAX_RECIPIENTS: usize = 8;

const KEY_LABEL: &[u8] = b"silk/v2 content key";
const STREAM_LABEL: &[u8] = b"silk/v2 response";
const TAG: usize = 16;
/// claims digest, encapsulated key, wrapped content key (32 + tag).
const ENTRY: usize = 32 + 32 + 32 + TAG;

/// A worker a spread request is sealed to.
#[derive(Clone, Copy, Debug)]
pub struct Recipient {
    /// Its attested HPKE public key.
    pub hpke_public_key: [u8; 32],
    /// The digest of its verified base claims.
    pub claims_digest: [u8; 32],
}

/// The version byte, the count, and every recipient's claims digest: what each wrapped key
/// is bound to.
fn recipients_aad(digests: &[[u8; 32]]) -> Vec<u8> {
    let mut aad = vec![VERSION, digests.len() as u8];
    for d in digests {
        aad.extend_from_slice(d);
    }
    aad
}

fn stream_keys(content_key: &[u8; 32]) -> Result<crate::seal::StreamKeys, SealError> {
    let hk = hkdf::Hkdf::<Sha256>::new(None, content_key);
    export_keys(|_, buf| {
        hk.expand(STREAM_LABEL, buf)
            .map_err(|_| hpke::HpkeError::KdfOutputTooLong)
    })
}

/// Seals `body` so that any one of `recipients` can open it. Returns the request bytes and
/// the opener of the answer's stream.
pub fn seal<R: RngCore + CryptoRng>(
    recipients: &[Recipient],
    body: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, StreamOpener), SealError> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(SealError::Recipients(recipients.len()));
    }
    let mut content_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(content_key.as_mut_slice());
    let digests: Vec<[u8; 32]> = recipients.iter().map(|r| r.claims_digest).collect();
    let aad = recipients_aad(&digests);
    let mut out = vec![VERSION, recipients.len() as u8];
    for r in recipients {
        let pk = PublicKey::from_bytes(&r.hpke_public_key).map_err(|_| SealError::BadPublicKey)?;
        let info = [KEY_LABEL, r.claims_digest.as_slice()].concat();
        let (enc, wrapped) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &pk,
            &info,
            content_key.as_slice(),
            &aad,
            rng,
        )
        .map_err(|_| SealError::BadPublicKey)?;
        out.extend_from_slice(&r.claims_digest);
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&wrapped);
    }
    let cipher =
        Aes256Gcm::new_from_slice(content_key.as_slice()).map_err(|_| SealError::Decrypt)?;
    let ct = cipher
        .encrypt(
            &Nonce::from([0u8; 12]),
            Payload {
                msg: body,
                aad: &out,
            },
        )
        .map_err(|_| SealError::Decrypt)?;
    out.extend_from_slice(&ct);
    Ok((out, StreamOpener::new(stream_keys(&content_key)?)))
}

/// The claims digests a spread request names, in order (readable by anyone on the path).
pub fn recipients(wire: &[u8]) -> Result<Vec<[u8; 32]>, SealError> {
    if wire.first() != Some(&VERSION) {
        return Err(SealError::UnknownVersion(
            wire.first().copied().unwrap_or(0),
        ));
    }
    let k = *wire.get(1).ok_or(SealError::TooShort(wire.len()))? as usize;
    if k == 0 || k > MAX_RECIPIENTS {
        return Err(SealError::Recipients(k));
    }
    if wire.len() < 2 + k * ENTRY + TAG {
        return Err(SealError::TooShort(wire.len()));
    }
    Ok((0..k)
        .map(|i| {
            let mut d = [0u8; 32];
            d.copy_from_slice(&wire[2 + i * ENTRY..2 + i * ENTRY + 32]);
            d
        })
        .collect())
}

/// Opens a spread request with this enclave's keys, if `claims_digest` is among its
/// recipients.
pub(crate) fn open(
    keys: &EnclaveKeys,
    claims_digest: &[u8; 32],
    wire: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, StreamSealer), SealError> {
    let digests = recipients(wire)?;
    let i = digests
        .iter()
        .position(|d| d == claims_digest)
        .ok_or(SealError::WrongClaims)?;
    let entry = &wire[2 + i * ENTRY..2 + (i + 1) * ENTRY];
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&entry[32..64])
        .map_err(|_| SealError::Decrypt)?;
    let info = [KEY_LABEL, claims_digest.as_slice()].concat();
    let key = hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
        &OpModeR::Base,
        &keys.private,
        &enc,
        &info,
        &entry[64..],
        &recipients_aad(&digests),
    )
    .map_err(|_| SealError::Decrypt)?;
    let key = Zeroizing::new(key);
    let content_key: Zeroizing<[u8; 32]> =
        Zeroizing::new(key.as_slice().try_into().map_err(|_| SealError::Decrypt)?);
    let header = 2 + digests.len() * ENTRY;
    let cipher =
        Aes256Gcm::new_from_slice(content_key.as_slice()).map_err(|_| SealError::Decrypt)?;
    let plain = cipher
        .decrypt(
            &Nonce::from([0u8; 12]),
            Payload {
                msg: &wire[header..],
                aad: &wire[..header],
            },
        )
        .map_err(|_| SealError::Decrypt)?;
    Ok((
        Zeroizing::new(plain),
        StreamSealer::new(stream_keys(&content_key)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{open_request, os_rng};

    fn workers(n: usize) -> Vec<(EnclaveKeys, Recipient)> {
        (0..n)
            .map(|i| {
                let k = EnclaveKeys::generate(&mut os_rng());
                let r = Recipient {
                    hpke_public_key: k.public_key(),
                    claims_digest: [i as u8 + 1; 32],
                };
                (k, r)
            })
            .collect()
    }

    #[test]
    fn any_recipient_opens_it_and_answers_the_client() {
        let ws = workers(3);
        let rs: Vec<_> = ws.iter().map(|(_, r)| *r).collect();
        for (keys, r) in &ws {
            let (wire, mut opener) = seal(&rs, b"hello", &mut os_rng()).unwrap();
            assert_eq!(recipients(&wire).unwrap().len(), 3);
            let (plain, mut sealer) = open_request(keys, &r.claims_digest, &wire).unwrap();
            assert_eq!(plain.as_slice(), b"hello");
            let frame = sealer.seal(b"answer", true).unwrap();
            assert_eq!(opener.push(&frame).unwrap()[0].as_slice(), b"answer");
        }
    }

    #[test]
    fn outsiders_moved_entries_and_flipped_bytes_are_refused() {
        let ws = workers(2);
        let rs: Vec<_> = ws.iter().map(|(_, r)| *r).collect();
        let (wire, _) = seal(&rs, b"hello", &mut os_rng()).unwrap();
        let outsider = EnclaveKeys::generate(&mut os_rng());
        assert_eq!(
            open_request(&outsider, &[9; 32], &wire).err(),
            Some(SealError::WrongClaims)
        );
        // An outsider listed under a recipient's digest cannot unwrap that recipient's key.
        assert_eq!(
            open_request(&outsider, &rs[0].claims_digest, &wire).err(),
            Some(SealError::Decrypt)
        );
        for i in 0..wire.len() {
            let mut m = wire.clone();
            m[i] ^= 0x01;
            // The whole header (other recipients' entries too) is the body's associated data.
            assert!(
                open_request(&ws[0].0, &rs[0].claims_digest, &m).is_err(),
                "byte {i}"
            );
        }
        assert_eq!(
            seal(&[], b"x", &mut os_rng()).err(),
            Some(SealError::Recipients(0))
        );
    }
}
