//! Suishen's response signatures: an SM2 signature (`X-Suishen-Signature`, base64 DER)
//! over the exact raw body, by one of the region's published keys (`X-Suishen-Key-Id`).
//! Below the region modules and the pure decoder, which both check it.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;

use crate::error::AdapterError;

/// The header naming the signing key.
pub const KEY_ID_HEADER: &str = "x-suishen-key-id";
/// The header carrying the base64 DER SM2 signature.
pub const SIGNATURE_HEADER: &str = "x-suishen-signature";

/// Checks `X-Suishen-Key-Id` / `X-Suishen-Signature` against the configured keys.
#[derive(Clone, Debug)]
pub struct SignatureVerifier {
    keys: HashMap<String, sm2::VerifyingKey>,
}

impl SignatureVerifier {
    /// Parses the configured (key id, PEM) pairs; at least one key is required.
    pub fn new(keys: &[(String, Vec<u8>)]) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no Suishen signing key configured".into());
        }
        let mut map = HashMap::new();
        for (id, pem) in keys {
            let key = sm2::VerifyingKey::from_pem(pem)
                .map_err(|e| format!("Suishen signing key `{id}`: {e}"))?;
            map.insert(id.clone(), key);
        }
        Ok(SignatureVerifier { keys: map })
    }

    /// Verifies the signature headers over the exact raw `body`.
    pub fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AdapterError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let key_id = header(KEY_ID_HEADER)
            .ok_or_else(|| AdapterError::invalid_response("response not signed (no key id)"))?;
        let signature = header(SIGNATURE_HEADER)
            .ok_or_else(|| AdapterError::invalid_response("response not signed (no signature)"))?;
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| AdapterError::invalid_response("response signed by an unknown key"))?;
        let der = BASE64
            .decode(signature)
            .map_err(|_| AdapterError::invalid_response("signature is not base64"))?;
        if key.verify(body, &der) {
            Ok(())
        } else {
            Err(AdapterError::invalid_response("bad response signature"))
        }
    }
}

/// SM2 signatures as Suishen makes them: SM3 digest over the raw message, with the signer
/// distinguishing ID set (GM/T 0009's default `1234567812345678`; OpenSSL 3's default is
/// empty, which would give different, incompatible signatures).
pub mod sm2 {
    use std::ffi::{c_int, c_void};

    use foreign_types::ForeignTypeRef;
    use openssl::error::ErrorStack;
    use openssl::md::Md;
    use openssl::md_ctx::MdCtx;
    use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
    use openssl::pkey_ctx::PkeyCtxRef;

    /// The GM/T 0009 default distinguishing ID Suishen signs with.
    pub const DISTINGUISHING_ID: &[u8] = b"1234567812345678";

    /// `EVP_PKEY_CTRL_SET1_ID` from OpenSSL's `evp.h` (not bound by `openssl-sys`).
    const EVP_PKEY_CTRL_SET1_ID: c_int = 15;

    /// Sets the SM2 distinguishing ID on a signing/verifying context.
    ///
    /// The `openssl` crate does not expose `EVP_PKEY_CTX_set1_id`, and `openssl-sys` does
    /// not bind it (a macro in OpenSSL 1.1.1, a function in 3.0); both are exactly
    /// `EVP_PKEY_CTX_ctrl(ctx, -1, -1, EVP_PKEY_CTRL_SET1_ID, len, id)`, which `openssl-sys`
    /// does bind. It must run after `EVP_DigestSign/VerifyInit` and before the first
    /// update: OpenSSL computes the SM2 `Z` value (which hashes the ID) on the first
    /// update, and refuses a later ID.
    fn set_distinguishing_id<T>(ctx: &mut PkeyCtxRef<T>, id: &[u8]) -> Result<(), ErrorStack> {
        let Ok(len) = c_int::try_from(id.len()) else {
            return Err(ErrorStack::get());
        };
        // SAFETY: `ctx.as_ptr()` is a valid `EVP_PKEY_CTX*` for the duration of the borrow
        // (owned by the `MdCtx` that handed it out). The ctrl reads `len` bytes from `id`
        // and copies them into the context ("set1" = copy); it neither writes through nor
        // keeps the pointer, so casting away `const` for the C signature is sound.
        let r = unsafe {
            openssl_sys::EVP_PKEY_CTX_ctrl(
                ctx.as_ptr(),
                -1,
                -1,
                EVP_PKEY_CTRL_SET1_ID,
                len,
                id.as_ptr() as *mut c_void,
            )
        };
        if r > 0 {
            Ok(())
        } else {
            Err(ErrorStack::get())
        }
    }

    /// Whether the key is on the SM2 curve. OpenSSL 3 decodes such keys as provider keys of
    /// type "SM2" whose numeric id is -1 and which are not `EC_KEY`s, so ask by name.
    fn is_sm2<T: HasPublic>(key: &PKeyRef<T>) -> bool {
        // SAFETY: `key.as_ptr()` is a valid `EVP_PKEY*` for the borrow; the name is a
        // NUL-terminated static string; `EVP_PKEY_is_a` only reads both.
        let by_name = unsafe { openssl_sys::EVP_PKEY_is_a(key.as_ptr(), c"SM2".as_ptr()) == 1 };
        by_name || key.id() == Id::SM2
    }

    /// A region public key that verifies SM2/SM3 signatures.
    #[derive(Clone)]
    pub struct VerifyingKey(PKey<Public>);

    impl std::fmt::Debug for VerifyingKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("sm2::VerifyingKey")
        }
    }

    impl VerifyingKey {
        /// Parses a PEM public key (`-----BEGIN PUBLIC KEY-----`) on the SM2 curve.
        pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
            let key = PKey::public_key_from_pem(pem).map_err(|_| "not a PEM public key")?;
            if !is_sm2(&key) {
                return Err("not an SM2 key".into());
            }
            Ok(VerifyingKey(key))
        }

        /// Whether `signature` (DER) is this key's SM2 signature of `message` with
        /// distinguishing ID `id`. Any failure (malformed DER, wrong key) is `false`.
        pub fn verify_with_id(&self, message: &[u8], signature: &[u8], id: &[u8]) -> bool {
            let result = (|| -> Result<bool, ErrorStack> {
                let mut ctx = MdCtx::new()?;
                let pctx = ctx.digest_verify_init(Some(Md::sm3()), &self.0)?;
                set_distinguishing_id(pctx, id)?;
                ctx.digest_verify_update(message)?;
                ctx.digest_verify_final(signature)
            })();
            // An error leaves nothing on OpenSSL's thread-local queue: ErrorStack::get
            // drained it.
            matches!(result, Ok(true))
        }

        /// [`VerifyingKey::verify_with_id`] with Suishen's ID `1234567812345678`.
        pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            self.verify_with_id(message, signature, DISTINGUISHING_ID)
        }
    }

    /// An SM2 private key that signs like Suishen (for the simulator and tests).
    pub struct SigningKey(PKey<Private>);

    impl std::fmt::Debug for SigningKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("sm2::SigningKey([redacted])")
        }
    }

    impl SigningKey {
        /// Parses a PEM private key on the SM2 curve (PKCS#8 or SEC1).
        pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
            let key = PKey::private_key_from_pem(pem).map_err(|_| "not a PEM private key")?;
            if !is_sm2(&key) {
                return Err("not an SM2 key".into());
            }
            Ok(SigningKey(key))
        }

        /// The DER SM2 signature of `message` with distinguishing ID `id`.
        pub fn sign_with_id(&self, message: &[u8], id: &[u8]) -> Result<Vec<u8>, String> {
            (|| -> Result<Vec<u8>, ErrorStack> {
                let mut ctx = MdCtx::new()?;
                let pctx = ctx.digest_sign_init(Some(Md::sm3()), &self.0)?;
                set_distinguishing_id(pctx, id)?;
                ctx.digest_sign_update(message)?;
                let mut sig = Vec::new();
                ctx.digest_sign_final_to_vec(&mut sig)?;
                Ok(sig)
            })()
            .map_err(|e| format!("SM2 signing failed: {e}"))
        }

        /// [`SigningKey::sign_with_id`] with Suishen's ID `1234567812345678`.
        pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
            self.sign_with_id(message, DISTINGUISHING_ID)
        }

        /// The matching public key.
        pub fn verifying_key(&self) -> Result<VerifyingKey, String> {
            let der = self
                .0
                .public_key_to_der()
                .map_err(|_| "cannot export the public key")?;
            PKey::public_key_from_der(&der)
                .map(VerifyingKey)
                .map_err(|_| "cannot import the public key".into())
        }
    }
}
