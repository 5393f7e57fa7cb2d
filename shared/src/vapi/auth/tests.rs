//! Every scheme with real signatures. The vectors in `vapi_credential_*` were computed with
//! Python's `hmac` module, not with this crate, so a shared mistake cannot pass both.

use super::*;
use http::HeaderValue;

const NOW: i64 = 1_772_463_918;
const BODY: &[u8] = br#"{"message":{"type":"status-update"}}"#;

fn auth() -> WebhookAuth {
    WebhookAuth::new(
        ["s3cret".to_string(), "old-secret".to_string()],
        "X-Vapi-Signature",
    )
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn signed_with_ts(secret: &str, ts: i64) -> String {
    sign(
        secret,
        format!("{ts}.{}", String::from_utf8_lossy(BODY)).as_bytes(),
    )
}

type Case<'a> = (Vec<(&'a str, &'a str)>, Result<(), AuthError>);

#[test]
fn every_scheme_and_failure() {
    let good_sig = sign("s3cret", BODY);
    let ts = NOW.to_string();
    let ts_ms = (NOW * 1000).to_string();
    let stale = (NOW - 301).to_string();
    let sig_ts = signed_with_ts("s3cret", NOW);
    let sig_ts_ms = sign(
        "s3cret",
        format!("{ts_ms}.{}", String::from_utf8_lossy(BODY)).as_bytes(),
    );
    let sig_stale = signed_with_ts("s3cret", NOW - 301);
    let prefixed = format!("sha256={good_sig}");
    let rotated = sign("old-secret", BODY);
    let other = sign("other", BODY);
    let cases: Vec<Case> = vec![
        (vec![("x-vapi-secret", "s3cret")], Ok(())),
        (vec![("X-VAPI-SECRET", "old-secret")], Ok(())),
        (vec![("authorization", "Bearer s3cret")], Ok(())),
        (vec![("x-vapi-signature", &good_sig)], Ok(())),
        (vec![("x-vapi-signature", &prefixed)], Ok(())),
        (vec![("x-vapi-signature", &rotated)], Ok(())),
        (
            vec![("x-vapi-signature", &sig_ts), ("x-vapi-timestamp", &ts)],
            Ok(()),
        ),
        (
            vec![("x-vapi-signature", &sig_ts_ms), ("x-timestamp", &ts_ms)],
            Ok(()),
        ),
        // A wrong secret in one header does not hide a right one in another.
        (
            vec![
                ("x-vapi-secret", "nope"),
                ("authorization", "Bearer s3cret"),
            ],
            Ok(()),
        ),
        (vec![], Err(AuthError::Missing)),
        (vec![("x-vapi-secret", "s3cre")], Err(AuthError::Mismatch)),
        (vec![("x-vapi-secret", "")], Err(AuthError::Mismatch)),
        (
            vec![("authorization", "Basic s3cret")],
            Err(AuthError::Mismatch),
        ),
        (vec![("authorization", "Bearer ")], Err(AuthError::Mismatch)),
        (
            vec![("x-vapi-signature", "zz")],
            Err(AuthError::MalformedSignature),
        ),
        (vec![("x-vapi-signature", &other)], Err(AuthError::Mismatch)),
        // A timestamp header changes what is signed: the body-only signature no longer matches.
        (
            vec![("x-vapi-signature", &good_sig), ("x-vapi-timestamp", &ts)],
            Err(AuthError::Mismatch),
        ),
        (
            vec![
                ("x-vapi-signature", &sig_stale),
                ("x-vapi-timestamp", &stale),
            ],
            Err(AuthError::StaleTimestamp),
        ),
        (
            vec![("x-vapi-signature", &sig_ts), ("x-vapi-timestamp", "soon")],
            Err(AuthError::MalformedTimestamp),
        ),
    ];
    for (h, want) in cases {
        assert_eq!(auth().verify(&headers(&h), BODY, NOW), want, "{h:?}");
    }
}

#[test]
fn signature_covers_the_exact_bytes() {
    let sig = sign("s3cret", BODY);
    let mut tampered = BODY.to_vec();
    tampered.push(b' ');
    assert_eq!(
        auth().verify(&headers(&[("x-vapi-signature", &sig)]), &tampered, NOW),
        Err(AuthError::Mismatch)
    );
}

#[test]
fn configurable_signature_header_and_disabled_mode() {
    let a = WebhookAuth::new(["k".to_string()], "x-signature");
    let sig = sign("k", BODY);
    assert_eq!(
        a.verify(&headers(&[("x-signature", &sig)]), BODY, NOW),
        Ok(())
    );
    assert_eq!(
        a.verify(&headers(&[("x-vapi-signature", &sig)]), BODY, NOW),
        Err(AuthError::Missing)
    );
    assert_eq!(
        WebhookAuth::disabled().verify(&HeaderMap::new(), BODY, NOW),
        Ok(())
    );
    // Debug output never shows a secret.
    assert!(!format!("{:?}", auth()).contains("s3cret"));
}

/// `hmac.new(b"s3cret", b"1772463918." + BODY, hashlib.<alg>)`, encoded as named.
const SHA256_HEX: &str = "10d8ae7db423f69baa67af24003720b2ce5d81e93416b9bd7a1546aa6041b265";
const SHA256_B64: &str = "ENiufbQj9puqZ68kADcgss5dgek0Frm9ehVGqmBBsmU=";
const SHA512_HEX: &str = "e9e0ad57d04e760d519ac546a4045a4111be76998dfc97fb0cd5ea4439cef4212880ab0ee27f8c30b451da34b0e4df44d95ce19fe31ccae663f7ee80711cc068";
const SHA512_B64: &str =
    "6eCtV9BOdg1RmsVGpARaQRG+dpmN/Jf7DNXqRDnO9CEogKsO4n+MMLRR2jSw5N9E2Vzhn+McyuZj9+6AcRzAaA==";
const SHA1_HEX: &str = "4c0260480cce578713cba348877bb2fc1d8ef93b";
const SHA1_B64: &str = "TAJgSAzOV4cTy6NIh3uy/B2O+Ts=";
/// `hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()`: a credential with `includeTimestamp: false`.
const SHA256_HEX_BODY_ONLY: &str =
    "e52eb9cb3dbb089261b1556e097cb8c949ae95233b4a53dbaf7c46f4d8a6a025";

fn vapi(algorithm: Algorithm, encoding: Encoding) -> WebhookAuth {
    WebhookAuth::with_scheme(
        ["s3cret".to_string()],
        Scheme {
            algorithm,
            encoding,
            ..Scheme::default()
        },
    )
}

#[test]
fn vapi_credential_defaults_need_only_the_secret() {
    let ts = NOW.to_string();
    let ts_ms = (NOW * 1000).to_string();
    let default = vapi(Algorithm::Sha256, Encoding::Hex);
    // What Vapi's HMAC credential sends when nothing but the secret was set.
    let sent = headers(&[("x-signature", SHA256_HEX), ("x-timestamp", &ts)]);
    assert_eq!(default.verify(&sent, BODY, NOW), Ok(()));
    let prefixed = format!("sha256={SHA256_HEX}");
    assert_eq!(
        default.verify(
            &headers(&[("x-signature", &prefixed), ("x-timestamp", &ts)]),
            BODY,
            NOW
        ),
        Ok(())
    );
    assert_eq!(
        default.verify(
            &headers(&[("x-signature", SHA256_HEX_BODY_ONLY)]),
            BODY,
            NOW
        ),
        Ok(())
    );
    // The header api.md §2 named before credentials is still read by default.
    assert_eq!(
        default.verify(
            &headers(&[("x-vapi-signature", SHA256_HEX), ("x-vapi-timestamp", &ts)]),
            BODY,
            NOW
        ),
        Ok(())
    );
    // A millisecond timestamp is fresh too, but it is what was signed, so this signature is not.
    assert_eq!(
        default.verify(
            &headers(&[("x-signature", SHA256_HEX), ("x-timestamp", &ts_ms)]),
            BODY,
            NOW
        ),
        Err(AuthError::Mismatch)
    );
    assert_eq!(
        default.verify(
            &headers(&[("x-signature", SHA256_HEX), ("x-timestamp", &ts)]),
            b"{}",
            NOW
        ),
        Err(AuthError::Mismatch)
    );
}

#[test]
fn vapi_credential_algorithms_and_encodings() {
    let ts = NOW.to_string();
    let all = [
        (Algorithm::Sha256, Encoding::Hex, SHA256_HEX),
        (Algorithm::Sha256, Encoding::Base64, SHA256_B64),
        (Algorithm::Sha512, Encoding::Hex, SHA512_HEX),
        (Algorithm::Sha512, Encoding::Base64, SHA512_B64),
        (Algorithm::Sha1, Encoding::Hex, SHA1_HEX),
        (Algorithm::Sha1, Encoding::Base64, SHA1_B64),
    ];
    for (algorithm, encoding, _) in all {
        let auth = vapi(algorithm, encoding);
        for (alg2, enc2, sig) in all {
            let got = auth.verify(
                &headers(&[("x-signature", sig), ("x-timestamp", &ts)]),
                BODY,
                NOW,
            );
            if (alg2, enc2) == (algorithm, encoding) {
                assert_eq!(got, Ok(()), "{algorithm:?}/{encoding:?}");
            } else {
                assert_ne!(
                    got,
                    Ok(()),
                    "{algorithm:?}/{encoding:?} took {alg2:?}/{enc2:?}"
                );
            }
        }
        assert_eq!(
            Scheme {
                algorithm,
                encoding,
                ..Scheme::default()
            }
            .sign(
                b"s3cret",
                format!("{ts}.{}", String::from_utf8_lossy(BODY)).as_bytes()
            ),
            all.iter()
                .find(|c| (c.0, c.1) == (algorithm, encoding))
                .unwrap()
                .2
        );
    }
    let prefixed = format!("sha512={SHA512_B64}");
    assert_eq!(
        vapi(Algorithm::Sha512, Encoding::Base64).verify(
            &headers(&[("x-signature", &prefixed), ("x-timestamp", &ts)]),
            BODY,
            NOW
        ),
        Ok(())
    );
    assert_eq!(
        vapi(Algorithm::Sha256, Encoding::Base64).verify(
            &headers(&[("x-signature", "not base64!"), ("x-timestamp", &ts)]),
            BODY,
            NOW
        ),
        Err(AuthError::MalformedSignature)
    );
}

#[test]
fn a_bearer_credential_may_name_its_own_header() {
    let auth = WebhookAuth::new(["s3cret".to_string()], "x-signature")
        .with_bearer_header("X-Ringback-Token");
    for value in ["Bearer s3cret", "bearer s3cret", "s3cret"] {
        assert_eq!(
            auth.verify(&headers(&[("x-ringback-token", value)]), BODY, NOW),
            Ok(()),
            "{value}"
        );
    }
    assert_eq!(
        auth.verify(&headers(&[("x-ringback-token", "Bearer nope")]), BODY, NOW),
        Err(AuthError::Mismatch)
    );
    assert_eq!(
        auth.verify(&headers(&[("x-ringback-token", "")]), BODY, NOW),
        Err(AuthError::Mismatch)
    );
    // Authorization keeps working beside it.
    assert_eq!(
        auth.verify(&headers(&[("authorization", "Bearer s3cret")]), BODY, NOW),
        Ok(())
    );
    // Without the setting the custom header is not a credential.
    assert_eq!(
        WebhookAuth::new(["s3cret".to_string()], "x-signature").verify(
            &headers(&[("x-ringback-token", "s3cret")]),
            BODY,
            NOW
        ),
        Err(AuthError::Missing)
    );
}
