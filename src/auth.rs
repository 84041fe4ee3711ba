//! Inbound authentication for `POST /alert` and the `/logs` routes.
//!
//! Alertmanager's `http_config` can send a bearer token (`authorization: { credentials: ... }`)
//! or HTTP basic auth (`basic_auth: { username, password }`); either is accepted when it is
//! configured. Secrets are compared in constant time: both sides are hashed with SHA-256 first,
//! so neither the content nor the length of the expected value shows in the timing.

use std::fmt;

use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The credentials a request must present; with neither set, every request passes.
#[derive(Clone, Default)]
pub struct AuthSettings {
    pub bearer_token: Option<String>,
    pub basic: Option<BasicCredentials>,
}

#[derive(Clone)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("basic_user", &self.basic.as_ref().map(|b| b.user.as_str()))
            .finish()
    }
}

impl AuthSettings {
    pub fn is_enabled(&self) -> bool {
        self.bearer_token.is_some() || self.basic.is_some()
    }

    /// Checks the `Authorization` header of a request.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();

        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .bearer_token
                .as_deref()
                .is_some_and(|token| secrets_equal(credentials, token));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return self
                .basic
                .as_ref()
                .is_some_and(|basic| basic.matches(credentials));
        }
        false
    }

    /// Returns the `WWW-Authenticate` values of a 401 reply, one per accepted scheme.
    pub fn challenges(&self) -> Vec<HeaderValue> {
        let mut values = Vec::new();
        if self.bearer_token.is_some() {
            values.push(HeaderValue::from_static("Bearer realm=\"aegisir\""));
        }
        if self.basic.is_some() {
            values.push(HeaderValue::from_static(
                "Basic realm=\"aegisir\", charset=\"UTF-8\"",
            ));
        }
        values
    }

    /// Adds the challenges to a reply's headers.
    pub fn add_challenges(&self, headers: &mut HeaderMap) {
        for value in self.challenges() {
            headers.append(WWW_AUTHENTICATE, value);
        }
    }
}

impl BasicCredentials {
    /// Checks the base64 `user:password` of a basic `Authorization` header. The user and the
    /// password are both compared, so a wrong user takes as long as a wrong password.
    fn matches(&self, encoded: &str) -> bool {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let user_ok = secrets_equal(user, &self.user);
        let password_ok = secrets_equal(password, &self.password);
        user_ok & password_ok
    }
}

/// Compares two secrets in constant time over their SHA-256 digests.
pub fn secrets_equal(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    fn token_auth() -> AuthSettings {
        AuthSettings {
            bearer_token: Some("s3cret".to_string()),
            basic: None,
        }
    }

    fn basic_auth() -> AuthSettings {
        AuthSettings {
            bearer_token: None,
            basic: Some(BasicCredentials {
                user: "alertmanager".to_string(),
                password: "pa:ss".to_string(),
            }),
        }
    }

    fn basic_header(user_password: &str) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        format!("Basic {encoded}")
    }

    #[test]
    fn disabled_auth_passes_everything() {
        assert!(AuthSettings::default().check(&HeaderMap::new()));
    }

    #[test]
    fn bearer_token_must_match() {
        let auth = token_auth();
        assert!(auth.check(&headers("Bearer s3cret")));
        assert!(auth.check(&headers("bearer s3cret")));
        assert!(!auth.check(&headers("Bearer s3cre")));
        assert!(!auth.check(&headers("Bearer s3cret2")));
        assert!(!auth.check(&headers("Bearer")));
        assert!(!auth.check(&HeaderMap::new()));
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let auth = basic_auth();
        assert!(auth.check(&headers(&basic_header("alertmanager:pa:ss"))));
        assert!(!auth.check(&headers(&basic_header("alertmanager:pa"))));
        assert!(!auth.check(&headers(&basic_header("someone:pa:ss"))));
        assert!(!auth.check(&headers("Basic not-base64!")));
        assert!(!auth.check(&headers(&basic_header("no-colon"))));
    }

    #[test]
    fn scheme_not_configured_is_rejected() {
        assert!(!token_auth().check(&headers(&basic_header("alertmanager:pa:ss"))));
        assert!(!basic_auth().check(&headers("Bearer s3cret")));
    }

    #[test]
    fn both_schemes_accepted_when_both_set() {
        let auth = AuthSettings {
            bearer_token: token_auth().bearer_token,
            basic: basic_auth().basic,
        };
        assert!(auth.check(&headers("Bearer s3cret")));
        assert!(auth.check(&headers(&basic_header("alertmanager:pa:ss"))));
        assert_eq!(auth.challenges().len(), 2);
    }

    #[test]
    fn secrets_equal_compares_whole_value() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("ab", "abc"));
        assert!(!secrets_equal("", "abc"));
    }

    #[test]
    fn debug_hides_token_and_password() {
        let auth = AuthSettings {
            bearer_token: token_auth().bearer_token,
            basic: basic_auth().basic,
        };
        let text = format!("{auth:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("pa:ss"), "{text}");
    }
}
