//! Which endpoint a method and path name.

/// API versions that have the registration endpoints (added in `v0_5`).
pub const VERSIONS: [&str; 3] = ["v0_5", "v0_6", "v1"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    CreateInvitations {
        domain: &'a str,
    },
    ListInvitations {
        domain: &'a str,
    },
    /// A create request's progress: `.../sms_user_registration/batches/{batch_id}/`.
    BatchProgress {
        domain: &'a str,
        batch_id: &'a str,
    },
    Reinstall {
        domain: &'a str,
    },
    /// The registration page of a link sent by SMS: GET shows it, POST submits it. The
    /// short link (`/r/{token}`) names no domain: the token alone finds the invitation.
    Registration {
        domain: Option<&'a str>,
        token: &'a str,
        submit: bool,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
}

/// Routes a request. `stage` is the API Gateway stage, whose name may prefix the path.
pub fn route<'a>(method: &str, path: &'a str, stage: Option<&str>) -> Route<'a> {
    let path = match stage {
        Some(stage) if stage != "$default" => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["a", domain, "api", version, resource]
            if !domain.is_empty() && VERSIONS.contains(version) =>
        {
            match (*resource, method) {
                ("sms_user_registration", "POST") => Route::CreateInvitations { domain },
                ("sms_user_registration", "GET") => Route::ListInvitations { domain },
                ("sms_user_registration", _) => Route::MethodNotAllowed { allow: "GET, POST" },
                ("sms_user_registration_reinstall", "POST") => Route::Reinstall { domain },
                ("sms_user_registration_reinstall", _) => Route::MethodNotAllowed { allow: "POST" },
                _ => Route::NotFound,
            }
        }
        [
            "a",
            domain,
            "api",
            version,
            "sms_user_registration",
            "batches",
            batch_id,
        ] if !domain.is_empty() && !batch_id.is_empty() && VERSIONS.contains(version) => {
            match method {
                "GET" => Route::BatchProgress { domain, batch_id },
                _ => Route::MethodNotAllowed { allow: "GET" },
            }
        }
        ["a", domain, "register", token] if !domain.is_empty() && !token.is_empty() => {
            registration(method, Some(domain), token)
        }
        ["r", token] if !token.is_empty() => registration(method, None, token),
        _ => Route::NotFound,
    }
}

fn registration<'a>(method: &str, domain: Option<&'a str>, token: &'a str) -> Route<'a> {
    match method {
        "GET" | "HEAD" => Route::Registration {
            domain,
            token,
            submit: false,
        },
        "POST" => Route::Registration {
            domain,
            token,
            submit: true,
        },
        _ => Route::MethodNotAllowed { allow: "GET, POST" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_with_or_without_trailing_slash_is_routed() {
        for version in VERSIONS {
            for path in [
                format!("/a/demo/api/{version}/sms_user_registration/"),
                format!("/a/demo/api/{version}/sms_user_registration"),
            ] {
                assert_eq!(
                    route("POST", &path, None),
                    Route::CreateInvitations { domain: "demo" },
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn unknown_versions_and_paths_are_not_found() {
        for path in [
            "/a/demo/api/v0_4/sms_user_registration/",
            "/a/demo/api/v2/sms_user_registration/",
            "/a//api/v0_5/sms_user_registration/",
            "/a/demo/api/v0_5/sms_user_registration//",
            "/a/demo/api/v0_5/other/",
            "/",
            "",
        ] {
            assert_eq!(route("POST", path, None), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn other_methods_are_not_allowed() {
        for method in ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
            assert_eq!(
                route(method, "/a/demo/api/v0_5/sms_user_registration/", None),
                Route::MethodNotAllowed { allow: "GET, POST" }
            );
        }
        for method in ["GET", "PUT"] {
            assert_eq!(
                route(
                    method,
                    "/a/demo/api/v1/sms_user_registration_reinstall/",
                    None
                ),
                Route::MethodNotAllowed { allow: "POST" }
            );
        }
    }

    #[test]
    fn listing_and_reinstall_are_routed() {
        assert_eq!(
            route("GET", "/a/demo/api/v0_5/sms_user_registration", None),
            Route::ListInvitations { domain: "demo" }
        );
        assert_eq!(
            route(
                "POST",
                "/a/demo/api/v0_6/sms_user_registration_reinstall/",
                None
            ),
            Route::Reinstall { domain: "demo" }
        );
        assert_eq!(
            route(
                "POST",
                "/a/demo/api/v0_4/sms_user_registration_reinstall/",
                None
            ),
            Route::NotFound
        );
    }

    #[test]
    fn registration_links_are_routed_for_get_and_post() {
        for (path, domain) in [
            ("/a/demo/register/TOKEN", Some("demo")),
            ("/a/demo/register/TOKEN/", Some("demo")),
            ("/r/TOKEN", None),
            ("/r/TOKEN/", None),
        ] {
            assert_eq!(
                route("GET", path, None),
                Route::Registration {
                    domain,
                    token: "TOKEN",
                    submit: false
                }
            );
            assert_eq!(
                route("POST", path, None),
                Route::Registration {
                    domain,
                    token: "TOKEN",
                    submit: true
                }
            );
            assert_eq!(
                route("PUT", path, None),
                Route::MethodNotAllowed { allow: "GET, POST" }
            );
        }
        assert_eq!(route("GET", "/a/demo/register/", None), Route::NotFound);
        assert_eq!(route("GET", "/a/demo/register/T/x", None), Route::NotFound);
        assert_eq!(route("GET", "/r/", None), Route::NotFound);
        assert_eq!(route("GET", "/r/T/x", None), Route::NotFound);
    }

    #[test]
    fn a_batchs_progress_is_routed_for_get_only() {
        for path in [
            "/a/demo/api/v0_5/sms_user_registration/batches/B1/",
            "/a/demo/api/v1/sms_user_registration/batches/B1",
        ] {
            assert_eq!(
                route("GET", path, None),
                Route::BatchProgress {
                    domain: "demo",
                    batch_id: "B1"
                }
            );
            assert_eq!(
                route("POST", path, None),
                Route::MethodNotAllowed { allow: "GET" }
            );
        }
        assert_eq!(
            route(
                "GET",
                "/a/demo/api/v0_4/sms_user_registration/batches/B1/",
                None
            ),
            Route::NotFound
        );
        assert_eq!(
            route(
                "GET",
                "/a/demo/api/v1/sms_user_registration/batches//",
                None
            ),
            Route::NotFound
        );
    }

    #[test]
    fn a_named_stage_prefix_is_dropped() {
        let path = "/prod/a/demo/api/v1/sms_user_registration/";
        assert_eq!(
            route("POST", path, Some("prod")),
            Route::CreateInvitations { domain: "demo" }
        );
        assert_eq!(route("POST", path, Some("$default")), Route::NotFound);
    }
}
