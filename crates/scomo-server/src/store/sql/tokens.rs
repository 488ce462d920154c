//! [`TokenStore`] on SQL.

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::{check_len, opt_ts, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{ApiToken, Timestamp, TokenId, TokenSecret};
use crate::store::TokenStore;

/// Prefix of every token's clear text, so leaked tokens are recognisable
/// (secret scanners) and other strings are rejected without a lookup.
pub(crate) const TOKEN_PREFIX: &str = "scomo_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Longest token name.
const MAX_TOKEN_NAME_LEN: usize = 128;

const VERIFY: &str = "UPDATE api_tokens SET last_used_at = $2 \
     WHERE token_sha256 = $1 AND revoked_at IS NULL \
     RETURNING id, name, created_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(&self, name: &str, now: Timestamp) -> Result<(ApiToken, TokenSecret)> {
        check_len("token name", name, MAX_TOKEN_NAME_LEN)?;
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let hash = sha256_hex(&secret);
        let id: i64 = with_pool!(self, |pool, _pg| {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_sha256, created_at) VALUES ($1, $2, $3) \
                 RETURNING id",
            )
            .bind(name)
            .bind(&hash)
            .bind(ts(now))
            .fetch_one(pool)
            .await?
        });
        let token = ApiToken {
            id: TokenId(id),
            name: name.to_owned(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((token, TokenSecret(secret)))
    }

    async fn verify_token(&self, secret: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        // The lookup is by hash, so timing reveals nothing about stored tokens.
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 256 {
            return Ok(None);
        }
        let hash = sha256_hex(secret);
        if let Some(writer) = &self.writer {
            // Every API call lands here: on SQLite through the group writer,
            // whose page cache another connection's commit would empty.
            let row = writer
                .write(move |c| {
                    super::lite::first(c, VERIFY, &[&hash, &ts(now)], |r| {
                        Ok(TokenRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            created_at: r.get(2)?,
                            last_used_at: r.get(3)?,
                            revoked_at: r.get(4)?,
                        })
                    })
                })
                .await?;
            return Ok(row.map(token_from_row));
        }
        let row: Option<TokenRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(VERIFY)
                .bind(&hash)
                .bind(ts(now))
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(token_from_row))
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows: Vec<TokenRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(
                "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    async fn revoke_token(&self, id: TokenId, now: Timestamp) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id.0)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token_from_row(r: TokenRow) -> ApiToken {
    ApiToken {
        id: TokenId(r.id),
        name: r.name,
        created_at: Timestamp::from_unix_millis(r.created_at),
        last_used_at: opt_ts(r.last_used_at),
        revoked_at: opt_ts(r.revoked_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_of_known_input() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
