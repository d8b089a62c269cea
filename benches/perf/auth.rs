//! Benchmark 6: a wrong key for a username that exists against a username that does not
//! (`RegistrationService::admit`, in-memory store), so only the function's own work is
//! timed: the two must take the same time, or timing tells which usernames exist.

use std::sync::Arc;
use std::time::Instant;

use smsreg::adapters::memory::{MemorySms, MemoryStore};
use smsreg::config::Config;
use smsreg::domain::project::hash_key;
use smsreg::domain::{ApiKey, Plan, Project};
use smsreg::ports::SystemClock;
use smsreg::service::RegistrationService;
use smsreg::service::access::{Access, AccessError, Credentials};

use crate::cpu::{DOMAIN, KEY, USER};
use crate::stats::{Summary, summarize};

pub struct AuthFigures {
    /// Nanoseconds per `admit` that answers 401.
    pub known_user_wrong_key_ns: Summary,
    pub unknown_user_ns: Summary,
    /// One hash and comparison of a presented key (`ApiKey::matches`): what the unknown
    /// username's answer skipped before it was compared against a stand-in.
    pub one_comparison_ns: Summary,
}

fn service() -> RegistrationService<MemoryStore, MemorySms> {
    let store = MemoryStore::new();
    store.put_project(Project {
        accounts: Default::default(),
        languages: vec![smsreg::domain::language::Language::En],
        texts: Default::default(),
        name: DOMAIN.into(),
        display_name: None,
        plan: Plan::Pro,
        registration_enabled: true,
        apps: vec![],
        allowed_countries: None,
        daily_invitation_limit: u32::MAX,
        sms: Default::default(),
    });
    store.put_key(ApiKey {
        username: USER.into(),
        domain: DOMAIN.into(),
        key_hash: hash_key(KEY),
        can_edit_data: true,
    });
    RegistrationService::new(
        store,
        MemorySms::new(),
        Arc::new(SystemClock),
        Config::default(),
    )
}

pub fn run(quick: bool) -> AuthFigures {
    let (rounds, batch) = if quick { (3, 10) } else { (301, 2000) };
    println!(
        "== 6. 401 for a known username with a wrong key vs an unknown username \
         (RegistrationService::admit, in-memory store; {rounds} rounds of {batch} calls, \
         the two interleaved)"
    );
    let service = service();
    let known = Credentials {
        username: USER.into(),
        key: "wrong-key-0123456789abcdef0123456789".into(),
    };
    let unknown = Credentials {
        username: "nobody@demo.example".into(),
        key: known.key.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let time_batch = |credentials: &Credentials| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..batch {
                let answer = service.admit(credentials, DOMAIN, Access::Edit).await;
                assert_eq!(answer, Err(AccessError::Unauthenticated));
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
    };
    let (mut known_ns, mut unknown_ns, mut comparison_ns) = (vec![], vec![], vec![]);
    let stored = ApiKey {
        username: USER.into(),
        domain: DOMAIN.into(),
        key_hash: hash_key(KEY),
        can_edit_data: true,
    };
    for round in 0..rounds {
        // Alternating which goes first, so that neither always runs on a warmer cache.
        if round % 2 == 0 {
            known_ns.push(time_batch(&known));
            unknown_ns.push(time_batch(&unknown));
        } else {
            unknown_ns.push(time_batch(&unknown));
            known_ns.push(time_batch(&known));
        }
        let start = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(std::hint::black_box(&stored).matches(&known.key));
        }
        comparison_ns.push(start.elapsed().as_nanos() as f64 / batch as f64);
    }
    let figures = AuthFigures {
        known_user_wrong_key_ns: summarize(&known_ns),
        unknown_user_ns: summarize(&unknown_ns),
        one_comparison_ns: summarize(&comparison_ns),
    };
    println!(
        "   known username, wrong key: {} ns per 401",
        figures.known_user_wrong_key_ns.show_spread(0)
    );
    println!(
        "   unknown username:          {} ns per 401",
        figures.unknown_user_ns.show_spread(0)
    );
    println!(
        "   one key hashed and compared (ApiKey::matches):  {} ns",
        figures.one_comparison_ns.show_spread(0)
    );
    figures
}
