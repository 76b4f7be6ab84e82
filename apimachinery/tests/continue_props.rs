//! Property tests for continue tokens: no panics on arbitrary tokens, round trips, and the
//! encoded JSON read back by an independent JSON parser.

use apimachinery::continue_token::{ContinueError, clean, decode_continue, encode_continue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics(token in "\\PC{0,80}", prefix in "/[a-z/]{0,10}") {
        let _ = decode_continue(&token, &prefix);
    }

    #[test]
    fn decode_never_panics_on_base64_of_arbitrary_json(s in "\\PC{0,60}") {
        let _ = decode_continue(&URL_SAFE_NO_PAD.encode(s), "/p/");
    }

    #[test]
    fn encode_is_go_json_and_round_trips(
        start in "\\PC{1,30}",
        rv in any::<i64>().prop_filter("rv 0 is rejected", |rv| *rv != 0),
    ) {
        let prefix = "/registry/things/";
        let key = format!("{prefix}{start}");
        let token = encode_continue(&key, prefix, rv).unwrap();
        // Independent check: serde_json reads what we wrote, field order is Go's, and none
        // of the characters Go escapes appears raw.
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let head = format!("{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":\"");
        prop_assert!(text.starts_with(&head), "{}", text);
        prop_assert!(!text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']), "{}", text);
        prop_assert!(!text.chars().any(|c| (c as u32) < 0x20), "{}", text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(v["start"].as_str(), Some(start.as_str()));
        prop_assert_eq!(v["rv"].as_i64(), Some(rv));

        let rooted = if start.starts_with('/') { start.clone() } else { format!("/{start}") };
        let decoded = decode_continue(&token, prefix);
        if clean(&rooted) == rooted {
            let (from, got_rv) = decoded.unwrap();
            prop_assert_eq!(got_rv, rv);
            prop_assert_eq!(from, format!("{prefix}{}", &rooted[1..]));
        } else {
            prop_assert!(
                matches!(decoded, Err(ContinueError::InvalidStartKey { .. })),
                "{:?}", decoded
            );
        }
    }

    #[test]
    fn decoded_keys_never_escape_the_prefix(segments in proptest::collection::vec("\\.{1,3}|[a-z]{1,3}|", 1..6)) {
        let start = segments.join("/");
        let json = format!("{{\"v\":\"meta.k8s.io/v1\",\"rv\":1,\"start\":{}}}", serde_json::to_string(&start).unwrap());
        if let Ok((from, _)) = decode_continue(&URL_SAFE_NO_PAD.encode(json), "/registry/pods/") {
            prop_assert!(from.starts_with("/registry/pods/"));
            let rest = &from["/registry/pods/".len()..];
            prop_assert!(!rest.split('/').any(|s| s == ".." || s == "."), "{}", from);
        }
    }

    #[test]
    fn clean_is_idempotent_and_rooted_stays_rooted(p in "[a./]{0,12}") {
        let c = clean(&p);
        prop_assert_eq!(clean(&c), c.clone());
        if p.starts_with('/') {
            prop_assert!(c.starts_with('/'));
            prop_assert!(!c.split('/').any(|s| s == ".."));
        }
    }
}
