//! A scripted OpenID provider for the tests that need tokens no honest IdP would issue: wrong
//! issuer, audience, expiry or nonce, `alg: none`, HS256 signed with the public key, unknown key
//! ids. It serves discovery, a JWKS (counting fetches) and a token endpoint that returns whatever
//! token the test set. Test-only.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

const PRIVATE_KEY: &str = include_str!("../fixtures/test-idp-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/test-idp-public.pem");
const JWKS: &str = include_str!("../fixtures/test-idp-jwks.json");
pub const KID: &str = "test-key-1";

#[derive(Default)]
struct Script {
    id_token: Option<String>,
    redirect_token_endpoint: bool,
    jwks_fetches: usize,
    redirect_target_hits: usize,
}

#[derive(Clone)]
pub struct FakeIdp {
    pub issuer: Url,
    script: Arc<Mutex<Script>>,
}

impl FakeIdp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let idp = Self { issuer: format!("http://{addr}/").parse().unwrap(), script: Arc::default() };
        let server = idp.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, std::convert::Infallible>(server.answer(req)) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        idp
    }

    fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let mut script = self.script.lock().unwrap();
        let issuer = self.issuer.as_str();
        match req.uri().path() {
            "/.well-known/openid-configuration" => json_response(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}authorize"),
                "token_endpoint": format!("{issuer}oauth/token"),
                "jwks_uri": format!("{issuer}.well-known/jwks.json"),
            })),
            "/.well-known/jwks.json" => {
                script.jwks_fetches += 1;
                json_response(serde_json::from_str(JWKS).unwrap())
            }
            "/oauth/token" if script.redirect_token_endpoint => Response::builder()
                .status(302)
                .header("location", format!("{issuer}elsewhere/token"))
                .body(Full::default())
                .unwrap(),
            "/oauth/token" => json_response(json!({
                "access_token": "at",
                "token_type": "Bearer",
                "id_token": script.id_token.clone().expect("the test set a token"),
            })),
            "/elsewhere/token" => {
                script.redirect_target_hits += 1;
                json_response(json!({ "id_token": script.id_token.clone() }))
            }
            _ => Response::builder().status(404).body(Full::default()).unwrap(),
        }
    }

    /// The token the next code exchange returns.
    pub fn issue(&self, id_token: String) {
        self.script.lock().unwrap().id_token = Some(id_token);
    }

    /// Makes the token endpoint answer with a redirect (which must not be followed).
    pub fn redirect_token_endpoint(&self) {
        self.script.lock().unwrap().redirect_token_endpoint = true;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.script.lock().unwrap().jwks_fetches
    }

    pub fn redirect_target_hits(&self) -> usize {
        self.script.lock().unwrap().redirect_target_hits
    }

    /// Claims an honest IdP would put in the ID token for this login.
    pub fn claims(&self, sub: &str, client_id: &str, nonce: &str) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "iss": self.issuer.as_str(),
            "sub": sub,
            "aud": client_id,
            "iat": now,
            "exp": now + 600,
            "nonce": nonce,
            "email": format!("{}@example.test", sub.replace('|', "-")),
            "email_verified": true,
            "name": "Forged Or Not",
        })
    }
}

/// RS256 with the fake IdP's key, under `kid`.
pub fn sign_rs256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap()).unwrap()
}

/// HS256 keyed with the RSA public key: the classic algorithm-confusion forgery.
pub fn sign_hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(PUBLIC_KEY.as_bytes())).unwrap()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    let header = BASE64_URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": KID}).to_string());
    let payload = BASE64_URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

fn json_response(value: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}
