//! Request parsing and validation: any body gives a request or field errors, never a panic,
//! and an accepted request keeps every user, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use smsreg::domain::request::{RegistrationRequest, RequestedNumber, ValidationContext};
use smsreg::domain::{App, Plan, Project};

fuzz_target!(|body: &[u8]| {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let project = Project {
        name: "demo".into(),
        display_name: None,
        plan: Plan::Pro,
        registration_enabled: true,
        apps: vec![App { id: "abcd1234abcd1234".into(), name: "Demo".into(), install_url: None }],
        allowed_countries: Some(vec!["US".into(), "KE".into()]),
        daily_invitation_limit: 1000,
    };
    let ctx = ValidationContext { project: &project, max_users: 500, registration_url_chars: 70 };
    match RegistrationRequest::validate(&map, ctx) {
        Ok(request) => {
            let users = map["users"].as_array().expect("accepted users are a list");
            assert_eq!(request.users.len(), users.len());
            for (entry, raw) in request.users.iter().zip(users) {
                let sent = raw["phone_number"].as_str().expect("accepted numbers are strings");
                match &entry.number {
                    RequestedNumber::Invalid(kept) => assert_eq!(kept, sent),
                    RequestedNumber::Valid(phone) => {
                        assert!(matches!(phone.region(), Some("US" | "KE")));
                    }
                }
            }
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
