//! `smsreg-admin`: the administrator's command-line tool.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    smsreg::tools::admin::main().await
}
