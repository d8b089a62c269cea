//! The listing's query parameters and its opaque cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::ApiError;
use crate::domain::PhoneNumber;
use crate::domain::RegistrationRecord;
use crate::domain::invitation::{DeliveryFilter, ShownStatus};
use crate::ports::{InvitationPage, ListCursor};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub status: Option<ShownStatus>,
    pub limit: usize,
    pub after: Option<ListCursor>,
    /// Only invitations whose first SMS's receipt says this.
    pub delivery: Option<DeliveryFilter>,
    /// Only invitations whose link was (`true`) or was not (`false`) opened.
    pub opened: Option<bool>,
}

impl ListParams {
    /// Whether an invitation of the page passes the `delivery` and `opened` filters. They
    /// apply to the page read, so that a page costs the same: a filtered page may hold
    /// fewer than `limit` invitations, even none, with a `next`.
    pub fn keeps(&self, record: &RegistrationRecord) -> bool {
        self.delivery
            .is_none_or(|d| DeliveryFilter::of(record.delivery.as_ref()) == d)
            && self.opened.is_none_or(|o| record.opened_at.is_some() == o)
    }
}

/// Reads `status`, `limit` and `cursor`; any other parameter is ignored.
pub fn parse_query(query: &str) -> Result<ListParams, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::BadQuery("The query string is malformed."))?;
    let mut params = ListParams {
        status: None,
        limit: DEFAULT_LIMIT,
        after: None,
        delivery: None,
        opened: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "status" => {
                params.status = Some(ShownStatus::parse(&value).ok_or(ApiError::BadQuery(
                    "status must be queued, pending, registered, failed, expired or opted_out.",
                ))?);
            }
            "limit" => {
                params.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or(ApiError::BadQuery(
                        "limit must be a whole number from 1 to 100.",
                    ))?;
            }
            "cursor" => params.after = Some(decode_cursor(&value)?),
            "delivery" => {
                params.delivery = Some(DeliveryFilter::parse(&value).ok_or(ApiError::BadQuery(
                    "delivery must be unknown, delivered or failed.",
                ))?);
            }
            "opened" => {
                params.opened = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::BadQuery("opened must be true or false.")),
                });
            }
            _ => {}
        }
    }
    Ok(params)
}

/// The cursor is base64url of a small JSON object. Only its position is taken from it:
/// the project always comes from the URL and the key, so no cursor reaches other data.
pub fn encode_cursor(cursor: &ListCursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).expect("a cursor serialises"))
}

fn decode_cursor(text: &str) -> Result<ListCursor, ApiError> {
    let bad = || ApiError::BadQuery("cursor is not a cursor this API returned.");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let cursor: ListCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    // Only a normalised valid number can be part of a position.
    match PhoneNumber::parse(&cursor.phone) {
        Ok(phone) if phone.as_str() == cursor.phone => Ok(cursor),
        _ => Err(bad()),
    }
}

pub fn page_json(page: &InvitationPage, now: u64) -> Value {
    json!({
        "objects": page.items.iter().map(|r| r.listed(now)).collect::<Vec<_>>(),
        "next": page.next.as_ref().map(encode_cursor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_have_defaults_and_bounds() {
        assert_eq!(
            parse_query("").unwrap(),
            ListParams {
                status: None,
                limit: 20,
                after: None,
                delivery: None,
                opened: None,
            }
        );
        let p = parse_query("status=expired&limit=100&other=x").unwrap();
        assert_eq!((p.status, p.limit), (Some(ShownStatus::Expired), 100));
        for bad in [
            "status=lost",
            "limit=0",
            "limit=101",
            "limit=ten",
            "cursor=%%%",
            "cursor=abc",
            "delivery=lost",
            "opened=yes",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cursor_survives_the_round_trip_and_forged_ones_are_refused() {
        let cursor = ListCursor {
            created_at: 1_800_000_000,
            phone: "+16175551234".into(),
            expires_at: 1_800_600_000,
        };
        let text = encode_cursor(&cursor);
        assert_eq!(
            parse_query(&format!("cursor={text}")).unwrap().after,
            Some(cursor)
        );
        let forged = URL_SAFE_NO_PAD.encode(br#"{"c":1,"p":"DOMAIN#other"}"#);
        assert!(parse_query(&format!("cursor={forged}")).is_err());
    }
}
