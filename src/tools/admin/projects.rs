//! `put-domain` and `put-app`: a project's settings, where its workers' accounts live, and
//! its apps.

use crate::domain::language::Language;
use clap::ArgGroup;

use super::context::{Admin, Failure, check_domain, failed, usage};
use crate::adapters::dynamodb::ProjectUpdate;
use crate::domain::account::{Accounts, HqProject, KINDS};
use crate::domain::encoding::{Encoding, measure};
use crate::domain::project::{MAX_DISPLAY_NAME_UNITS, check_display_name};
use crate::domain::window::SendWindow;
use crate::domain::{App, Plan};

/// Longest app id: an app's item key must stay far below DynamoDB's key limit.
const MAX_APP_ID_BYTES: usize = 128;

/// Longest HQ project name taken: HQ's own are far shorter.
const MAX_HQ_DOMAIN_CHARS: usize = 100;

/// `put-domain`'s arguments.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("feature").required(true).args(["enable", "disable"])))]
pub(super) struct PutDomainArgs {
    /// Project name: lowercase letters, digits and hyphens.
    domain: String,
    /// COMMUNITY, STANDARD, PRO, ADVANCED or ENTERPRISE (the API needs PRO or higher).
    #[arg(long, value_parser = clap::value_parser!(PlanArg))]
    plan: PlanArg,
    /// Turns SMS mobile worker registration on.
    #[arg(long)]
    enable: bool,
    /// Turns SMS mobile worker registration off.
    #[arg(long)]
    disable: bool,
    /// The name workers see in SMS (defaults to the project name): at most 30
    /// characters, so that every default SMS stays in one part.
    #[arg(long, value_parser = parse_display_name)]
    display_name: Option<String>,
    /// Countries the project may text, as ISO codes (`US,CA,KE`); "" allows all.
    /// Unset keeps the current list (new projects: all countries).
    #[arg(long, value_parser = parse_countries)]
    allowed_countries: Option<CountryList>,
    /// Most invitations per UTC day (new projects: 1000). Unset keeps the current limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    daily_invitation_limit: Option<u32>,
    /// Replace characters that have a GSM-7 look-alike (curly quotes, dashes, ...) so
    /// that an SMS is not sent as UCS-2 for them: on or off (new projects: on). Unset
    /// keeps the current setting.
    #[arg(long, value_parser = parse_on_off)]
    smart_encoding: Option<bool>,
    /// Most parts one SMS of a custom message may take, 1 to 11 (new projects: 3);
    /// a longer message is refused with a 400. Unset keeps the current setting.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=11))]
    max_parts_per_sms: Option<u32>,
    /// Hours of the worker's local day (from the number's time zone) in which
    /// invitations go, HH:MM-HH:MM, or any (new projects: 08:00-21:00). Unset keeps
    /// the current window.
    #[arg(long, value_parser = clap::value_parser!(SendWindow))]
    send_window: Option<SendWindow>,
    /// The most one part of an SMS may cost, in USD (0.05), or off (new projects: off).
    /// With End User Messaging, a dearer SMS (a premium-rate destination) is refused,
    /// not billed, and its invitation `failed`; SNS takes no cap. Unset keeps the cap.
    #[arg(long, value_parser = parse_max_price)]
    max_price_per_part: Option<MaxPrice>,
    /// Where registered workers get their accounts: service (the service's own table:
    /// no app signs in with them), cognito (the deployment's user pool, USER_POOL_ID) or
    /// commcare-hq (a project of a CommCare HQ server; needs the three --commcare-hq-*
    /// options). Unset keeps the current choice (new projects: service). check-accounts
    /// says whether the directory is ready; docs/accounts.md.
    #[arg(long, value_name = "KIND", value_parser = KINDS)]
    accounts: Option<String>,
    /// The languages its workers may read, comma-separated, the first its default: en,
    /// fr, es, pt, sw, hi, ar (docs/languages.md). Unset keeps them (new projects: en).
    #[arg(long, value_name = "CODES", value_parser = parse_languages)]
    languages: Option<Languages>,
    /// With --accounts commcare-hq: the HQ server, such as https://www.commcarehq.org
    /// (https; http only for localhost and 127.0.0.1).
    #[arg(long, value_name = "URL")]
    commcare_hq_url: Option<String>,
    /// With --accounts commcare-hq: the HQ project's name (its "domain") the accounts are
    /// made in.
    #[arg(long, value_name = "NAME")]
    commcare_hq_domain: Option<String>,
    /// With --accounts commcare-hq: the ARN of the Secrets Manager secret that holds the
    /// HQ User API's key (`web-user-email:api-key`). The key itself never goes on the
    /// command line.
    #[arg(long, value_name = "ARN")]
    commcare_hq_key_secret: Option<String>,
}

/// A price cap as given on the command line: `off`, or a price.
#[derive(Debug, Clone)]
struct MaxPrice(Option<String>);

fn parse_max_price(value: &str) -> Result<MaxPrice, String> {
    if value == "off" {
        return Ok(MaxPrice(None));
    }
    crate::domain::project::check_max_price(value).map(|()| MaxPrice(Some(value.to_owned())))
}

/// Country codes as given on the command line.
#[derive(Debug, Clone)]
struct CountryList(Vec<String>);

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not {value:?}")),
    }
}

fn parse_display_name(name: &str) -> Result<String, String> {
    check_display_name(name).map(|()| name.to_owned())
}

fn parse_countries(list: &str) -> Result<CountryList, String> {
    crate::domain::project::parse_country_list(list).map(CountryList)
}

/// A plan as given on the command line.
#[derive(Debug, Clone, Copy)]
struct PlanArg(Plan);

impl std::str::FromStr for PlanArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(PlanArg)
            .map_err(|e: crate::domain::project::UnknownPlan| e.to_string())
    }
}

/// The HQ options as given, before they are checked together with `--accounts`.
struct HqOptions {
    url: Option<String>,
    domain: Option<String>,
    key_secret: Option<String>,
}

/// The `--accounts` choice with its HQ options: `None` keeps the stored choice.
fn accounts_choice(kind: Option<&str>, hq: HqOptions) -> Result<Option<Accounts>, Failure> {
    let given = [
        ("--commcare-hq-url", hq.url.is_some()),
        ("--commcare-hq-domain", hq.domain.is_some()),
        ("--commcare-hq-key-secret", hq.key_secret.is_some()),
    ];
    let accounts = match kind {
        Some("commcare-hq") => {
            let missing: Vec<&str> = given
                .iter()
                .filter(|(_, present)| !present)
                .map(|(flag, _)| *flag)
                .collect();
            let (Some(url), Some(domain), Some(arn)) = (hq.url, hq.domain, hq.key_secret) else {
                return Err(usage(format!(
                    "--accounts commcare-hq needs --commcare-hq-url, --commcare-hq-domain and \
                     --commcare-hq-key-secret: missing {}",
                    missing.join(", ")
                )));
            };
            Accounts::CommCareHq(HqProject {
                base_url: hq_base_url(&url).map_err(usage)?,
                domain: hq_domain(&domain).map_err(usage)?,
                key_secret_arn: secret_arn(&arn).map_err(usage)?,
            })
        }
        other => {
            if let Some((flag, _)) = given.iter().find(|(_, present)| *present) {
                return Err(usage(format!(
                    "{flag} goes only with --accounts commcare-hq"
                )));
            }
            match other {
                None => return Ok(None),
                Some("cognito") => Accounts::Cognito,
                Some(_) => Accounts::Service,
            }
        }
    };
    Ok(Some(accounts))
}

/// An HQ server's base URL: https (http only to this machine, for a stand-in), without
/// its trailing slash, as the HQ client appends paths to it.
fn hq_base_url(url: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("--commcare-hq-url {url:?}: {why}"));
    let trimmed = url.strip_suffix('/').unwrap_or(url);
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return refuse("a base URL has no spaces, query or fragment");
    }
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return refuse("expected https://HOST, such as https://www.commcarehq.org");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("no user or password in the URL: the key is read from the secret");
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    if host.is_empty() {
        return refuse("expected https://HOST, such as https://www.commcarehq.org");
    }
    match scheme {
        "https" => Ok(trimmed.to_owned()),
        "http" if host == "localhost" || host == "127.0.0.1" => Ok(trimmed.to_owned()),
        "http" => refuse("HQ is reached over https (http only for localhost and 127.0.0.1)"),
        _ => refuse("expected https://HOST, such as https://www.commcarehq.org"),
    }
}

/// An HQ project's name: it goes into the User API's path and the accounts' usernames.
fn hq_domain(name: &str) -> Result<String, String> {
    let fits = !name.is_empty()
        && name.chars().count() <= MAX_HQ_DOMAIN_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if fits {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "--commcare-hq-domain {name:?}: an HQ project name is 1 to {MAX_HQ_DOMAIN_CHARS} \
             letters, digits, '-', '_' or '.'"
        ))
    }
}

/// A Secrets Manager secret's ARN, `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`.
/// The message never repeats what was given: it may be the key itself, pasted by mistake.
fn secret_arn(arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let looks_right = match parts[..] {
        [
            "arn",
            partition,
            "secretsmanager",
            region,
            account,
            "secret",
            name,
        ] => {
            partition.starts_with("aws")
                && !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        }
        _ => false,
    };
    if looks_right {
        Ok(arn.to_owned())
    } else {
        Err(
            "--commcare-hq-key-secret takes the ARN of a Secrets Manager secret \
             (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), never the key itself"
                .into(),
        )
    }
}

/// `--languages`: known codes, each once, at least one.
#[derive(Debug, Clone)]
pub(super) struct Languages(Vec<Language>);

fn parse_languages(list: &str) -> Result<Languages, String> {
    let mut languages = Vec::new();
    for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let language = Language::parse_or_explain(code)?;
        if languages.contains(&language) {
            return Err(format!("{code} is listed twice"));
        }
        languages.push(language);
    }
    if languages.is_empty() {
        return Err("name at least one language, the default first".into());
    }
    Ok(Languages(languages))
}

impl Admin {
    /// `smsreg-admin put-domain`.
    pub(super) async fn put_domain(&self, args: PutDomainArgs) -> Result<(), Failure> {
        let PutDomainArgs {
            domain,
            plan,
            enable,
            disable: _,
            display_name,
            allowed_countries,
            daily_invitation_limit,
            smart_encoding,
            max_parts_per_sms,
            send_window,
            max_price_per_part,
            accounts,
            languages,
            commcare_hq_url,
            commcare_hq_domain,
            commcare_hq_key_secret,
        } = args;
        check_domain(&domain)?;
        let accounts = accounts_choice(
            accounts.as_deref(),
            HqOptions {
                url: commcare_hq_url,
                domain: commcare_hq_domain,
                key_secret: commcare_hq_key_secret,
            },
        )?;
        match display_name.as_deref() {
            Some(title) if measure(title).encoding == Encoding::Ucs2 => eprintln!(
                "note: the display name has characters outside GSM-7: every default SMS \
                 will be sent as UCS-2 (70 characters a part), about twice the parts"
            ),
            None if domain.len() > MAX_DISPLAY_NAME_UNITS => eprintln!(
                "note: SMS name the project {domain:?} unless it has a display name; names \
                 over {MAX_DISPLAY_NAME_UNITS} characters can make default SMS two parts \
                 (set --display-name)"
            ),
            _ => {}
        }
        self.store
            .put_project(&ProjectUpdate {
                accounts: accounts.as_ref(),
                languages: languages.as_ref().map(|l| l.0.as_slice()),
                domain: &domain,
                plan: plan.0,
                enabled: enable,
                display_name: display_name.as_deref(),
                allowed_countries: allowed_countries.as_ref().map(|c| c.0.as_slice()),
                daily_invitation_limit,
                smart_encoding,
                max_parts_per_sms,
                send_window,
                max_price_per_part: max_price_per_part.as_ref().map(|p| p.0.as_deref()),
            })
            .await
            .map_err(failed)?;
        let state = if enable { "enabled" } else { "disabled" };
        println!("project {domain}: plan {}, registration {state}", plan.0);
        if let Some(languages) = &languages {
            println!(
                "languages: {} (default {})",
                crate::adapters::dynamodb::language_list(&languages.0),
                languages.0[0].code()
            );
        }
        if let Some(accounts) = &accounts {
            println!("accounts: {}", accounts.kind());
            if accounts.is_external() {
                eprintln!(
                    "note: `smsreg-admin check-accounts {domain}` says whether the directory \
                     is ready for them"
                );
            }
        }
        Ok(())
    }

    /// `smsreg-admin put-app`.
    pub(super) async fn put_app(
        &self,
        domain: String,
        app_id: String,
        name: String,
        install_url: Option<String>,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        if app_id.trim().is_empty() || app_id.len() > MAX_APP_ID_BYTES {
            return Err(usage(format!(
                "the app id must be 1 to {MAX_APP_ID_BYTES} bytes"
            )));
        }
        if let Some(url) = &install_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(usage(format!(
                "--install-url must be an http(s) URL, not {url:?}"
            )));
        }
        let app = App {
            id: app_id,
            name,
            install_url,
        };
        if !self.store.put_app(&domain, &app).await.map_err(failed)? {
            return Err(failed(format!(
                "project {domain:?} does not exist: create it with put-domain first"
            )));
        }
        println!("app {} of project {domain} saved", app.id);
        Ok(())
    }
}
