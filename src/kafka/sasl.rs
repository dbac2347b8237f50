//! SASL authentication: SaslHandshake (KIP-43) then SaslAuthenticate frames (KIP-152), with
//! the mechanism exchange done by the `rsasl` crate (PLAIN, SCRAM-SHA-256/512).
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};

use super::config::SaslConfig;
use super::conn::Connection;
use super::error::{KafkaError, Result};

/// Runs the whole SASL exchange on a fresh connection.
pub async fn authenticate(conn: &Connection, sasl: &SaslConfig) -> Result<()> {
    let err = |reason: String| KafkaError::Sasl {
        broker: conn.broker().to_string(),
        reason,
    };
    let mech = sasl.mechanism.name();
    let (hs, _) = conn
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)),
            1,
        )
        .await?;
    if hs.error_code != 0 {
        let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(err(format!(
            "broker refused mechanism {mech} (it offers {offered:?})"
        )));
    }
    let config = SASLConfig::with_credentials(None, sasl.username.clone(), sasl.password.clone())
        .map_err(|e| err(e.to_string()))?;
    let name = Mechname::parse(mech.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut session = SASLClient::new(config)
        .start_suggested(&[name])
        .map_err(|e| err(e.to_string()))?;
    let mut input: Option<Vec<u8>> = None;
    loop {
        let mut out = Vec::new();
        let state = session
            .step(input.as_deref(), &mut out)
            .map_err(|e| err(e.to_string()))?;
        if state.is_running()
            || matches!(state, State::Finished(rsasl::prelude::MessageSent::Yes))
            || input.is_none()
        {
            let (resp, _) = conn
                .call(
                    &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out)),
                    2,
                )
                .await?;
            if resp.error_code != 0 {
                let msg = resp
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                return Err(err(format!("{msg} (Kafka error code {})", resp.error_code)));
            }
            input = Some(resp.auth_bytes.to_vec());
        }
        if state.is_finished() {
            return Ok(());
        }
    }
}
