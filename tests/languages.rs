//! Workers read the service in their own language, end to end on moto: a batch with users
//! in three languages gets each SMS in its language; a French worker's replies get French
//! answers; ARRET opts a number out; the registration page is in the invitation's
//! language (Arabic right to left), switches to the project's others without losing the
//! token, and gives its errors in the page's language; a language the service or the
//! project does not have is a 400 that stores nothing.

mod common;

use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::domain::language::{Language, Texts, fill};
use smsreg::domain::{Plan, RegistrationStatus};
use smsreg::ports::InvitationStore;

const TABLE: &str = "sms-registration-languages";
const SW: &str = "+16175551234";
const FR: &str = "+16175555512";
const AR: &str = "+16175555513";
const TITLE: &str = "Demo Health";

/// The built-in text `id` in `language`, filled, as smart encoding sends it.
fn builtin(language: Language, id: &str, values: &[(&str, &str)]) -> String {
    smsreg::domain::sms::sent(fill(language.builtin(id).unwrap(), values), true)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_worker_reads_the_sms_the_answers_and_the_page_in_their_language() {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, Some("https://www.commcarehq.org/a/demo/app/1")).await;
    let mut update = project(DEMO_DOMAIN, Some(TITLE), Plan::Pro);
    let languages = [Language::Sw, Language::En, Language::Fr, Language::Ar];
    update.languages = Some(&languages);
    store.put_project(&update).await.unwrap();
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            ..Config::default()
        })
        .await;
    let sender = smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap();
    let replies = smsreg::wiring::aws_replies_with(&aws, config.clone()).unwrap();
    let queue_url = config.send_queue_url.clone().unwrap();
    let api = smsreg::wiring::aws_api_with(&aws, config).unwrap();
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let post = |body: Value| {
        lambda_http::request::from_str(&post_event(DEMO_DOMAIN, &body, &auth)).unwrap()
    };

    // Bad input first: nothing is stored.
    for (body, field) in [
        (
            json!({"app_id": DEMO_APP, "language": "xx", "users": [{"phone_number": SW}]}),
            "language",
        ),
        (
            json!({"app_id": DEMO_APP, "users": [{"phone_number": SW, "language": "hi"}]}),
            "users[0].language",
        ),
    ] {
        let (status, answer) = response_parts(&api.handle(post(body)).await);
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["sms_user_registration"][field].is_string(),
            "{answer}"
        );
        let phone = PhoneNumber::parse(SW).unwrap();
        assert!(
            store.find(&phone).await.unwrap().is_none(),
            "nothing stored"
        );
    }

    // The request's language for whoever names none; two workers name their own.
    let body = json!({"app_id": DEMO_APP, "language": "sw", "users": [
        {"phone_number": SW}, {"phone_number": FR, "language": "fr"},
        {"phone_number": AR, "language": "ar"}]});
    let (status, answer) = response_parts(&api.handle(post(body)).await);
    assert_eq!(status, 200, "{answer}");
    moto.deliver(&sender, &queue_url).await;
    for (phone, language) in [(SW, Language::Sw), (FR, Language::Fr), (AR, Language::Ar)] {
        let record = store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.language, Some(language));
        assert_eq!(record.listed(0)["language"], language.code());
        assert_eq!(
            moto.sms_to(phone),
            [builtin(language, "sms.ask_phone_type", &[("title", TITLE)])],
            "{phone}"
        );
    }

    // The French worker: 1 gets the French link text, AIDE the French help.
    let reply = |id: &str, from: &str, body: &str| sns_reply(id, from, body);
    replies
        .handle_records(&reply("fr-1", FR, "1"))
        .await
        .unwrap();
    moto.deliver(&sender, &queue_url).await;
    let fr_record = store
        .find(&PhoneNumber::parse(FR).unwrap())
        .await
        .unwrap()
        .unwrap();
    let link = format!("https://sms.example.org/r/{}", fr_record.token.as_str());
    let texts = moto.sms_to(FR);
    let expected =
        builtin(Language::Fr, "sms.android_link", &[("title", TITLE)]).replacen("{}", &link, 1);
    let full = builtin(Language::Fr, "sms.android_link", &[("title", TITLE)]).replacen(
        "{}",
        &format!(
            "https://sms.example.org/a/demo/register/{}",
            fr_record.token.as_str()
        ),
        1,
    );
    assert!(
        texts.contains(&expected) || texts.contains(&full),
        "{texts:?}"
    );
    replies
        .handle_records(&reply("fr-2", FR, "Aide"))
        .await
        .unwrap();
    moto.deliver(&sender, &queue_url).await;
    assert_eq!(
        moto.sms_to(FR).last().unwrap(),
        &builtin(Language::Fr, "sms.help", &[("title", TITLE)])
    );

    // ARRET opts the Swahili worker's number out (a French word, for every project).
    replies
        .handle_records(&reply("sw-stop", SW, "ARRÊT"))
        .await
        .unwrap();
    let sw_record = store
        .find(&PhoneNumber::parse(SW).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sw_record.status, RegistrationStatus::OptedOut);

    // The page, through a local gateway: in the invitation's language.
    let served = common::gateway::serve(
        smsreg::wiring::aws_api_with(
            &aws,
            moto.queued(Config {
                table_name: TABLE.into(),
                public_base_url: "https://sms.example.org".into(),
                ..Config::default()
            })
            .await,
        )
        .unwrap(),
    );
    let ar_record = store
        .find(&PhoneNumber::parse(AR).unwrap())
        .await
        .unwrap()
        .unwrap();
    let page_url = format!("{served}/a/demo/register/{}", ar_record.token.as_str());
    let get = |url: &str, accept: Option<&str>| {
        let mut request = ureq::get(url);
        if let Some(accept) = accept {
            request = request.header("accept-language", accept);
        }
        request.call().unwrap().body_mut().read_to_string().unwrap()
    };
    let arabic = get(&page_url, Some("en"));
    assert!(arabic.contains(r#"<html lang="ar" dir="rtl">"#), "{arabic}");
    assert!(arabic.contains(Language::Ar.builtin("page.submit").unwrap()));
    // Its links to the project's other languages keep the token.
    assert!(arabic.contains(r#"href="?lang=sw""#), "{arabic}");
    let swahili = get(&format!("{page_url}?lang=sw"), None);
    assert!(
        swahili.contains(r#"<html lang="sw" dir="ltr">"#),
        "{swahili}"
    );
    assert!(swahili.contains(Language::Sw.builtin("page.username").unwrap()));
    // A language the project does not have: the invitation's.
    assert!(get(&format!("{page_url}?lang=hi"), None).contains(r#"lang="ar""#));
    // The form's error in the page's language.
    let mut answer = ureq::post(format!("{page_url}?lang=fr"))
        .header("content-type", "application/x-www-form-urlencoded")
        .config()
        .http_status_as_error(false)
        .build()
        .send("username=amina&password=correct+horse&password2=correct+hose&email=")
        .unwrap();
    assert_eq!(answer.status(), 400);
    let page = answer.body_mut().read_to_string().unwrap();
    assert!(page.contains(r#"<html lang="fr" dir="ltr">"#), "{page}");
    let mismatch = Language::Fr.builtin("form.passwords_differ").unwrap();
    assert!(
        page.contains(&maud::html! { (mismatch) }.into_string()),
        "{page}"
    );
    // A browser's language where the invitation has none.
    assert_eq!(Texts::english().get("page.submit"), "Register");
}
