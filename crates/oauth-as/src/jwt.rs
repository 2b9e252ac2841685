//! ES256 (ECDSA P-256, SHA-256) compact JWS for id_tokens, and the JWK of the public key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::Value;

/// The JWS algorithm of every id_token.
pub const ALG: &str = "ES256";

/// One signing key: its id and the key pair.
pub(crate) struct SigningKey {
    pub kid: String,
    pair: EcdsaKeyPair,
}

/// A new private key in PKCS#8 form.
pub(crate) fn generate_pkcs8() -> Result<Vec<u8>, anyhow::Error> {
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
    Ok(document.as_ref().to_vec())
}

impl SigningKey {
    pub(crate) fn from_pkcs8(kid: String, pkcs8: &[u8]) -> Result<Self, anyhow::Error> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| anyhow::anyhow!("stored signing key {kid} is unusable: {e}"))?;
        Ok(Self { kid, pair })
    }

    /// The public key as a JWK (`kty` EC, `crv` P-256).
    pub(crate) fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(point.len().saturating_sub(1) / 2);
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "use": "sig",
            "alg": ALG,
        })
    }

    /// `claims` signed as a compact JWS.
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, anyhow::Error> {
        let header = serde_json::json!({"alg": ALG, "typ": "JWT", "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign an id_token"))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn a_signed_token_verifies_against_its_published_jwk() {
        let key = SigningKey::from_pkcs8("k1".into(), &generate_pkcs8().unwrap()).unwrap();
        let token = key.sign(&serde_json::json!({"sub": "u1"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwk = key.jwk();
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        assert_eq!(point.len(), 65);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        let tampered = format!(
            "{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(br#"{"sub":"u2"}"#)
        );
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .verify(tampered.as_bytes(), &signature)
                .is_err()
        );
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
    }
}
