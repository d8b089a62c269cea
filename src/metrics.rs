//! CloudWatch Embedded Metric Format: one JSON object per request or batch, printed on a
//! line of its own (stdout), which CloudWatch Logs turns into metrics. Counts and sums
//! only: no phone number, token or text ever goes in.

use serde_json::{Map, Value, json};

/// The metrics' namespace in CloudWatch (the dashboard and alarms of `template.yaml`).
pub const NAMESPACE: &str = "SmsRegistration";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    /// Dollars, summed: CloudWatch has no currency unit.
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::None => "None",
        }
    }
}

/// One function's metrics for one request or batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// `api`, `sender`, `inbound` or `receipts`: the one dimension.
    function: &'static str,
    values: Vec<(&'static str, Unit, f64)>,
}

impl Metrics {
    pub fn new(function: &'static str) -> Self {
        Metrics {
            function,
            values: Vec::new(),
        }
    }

    pub fn count(mut self, name: &'static str, n: usize) -> Self {
        self.values.push((name, Unit::Count, n as f64));
        self
    }

    pub fn value(mut self, name: &'static str, unit: Unit, v: f64) -> Self {
        self.values.push((name, unit, v));
        self
    }

    /// The EMF object, at `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let mut object = Map::new();
        object.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": self.values.iter()
                        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        object.insert("Function".into(), self.function.into());
        for (name, _, v) in &self.values {
            object.insert((*name).into(), json!(v));
        }
        Value::Object(object)
    }

    /// Prints the object on a line of its own, when running as a Lambda function (Lambda,
    /// `cargo lambda watch` and the tests' Runtime API stand-in name the function); the
    /// service used in-process (tests, benchmarks) prints none.
    pub fn emit(&self) {
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        println!("{}", self.to_json(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_object_declares_each_value_with_its_unit_and_the_function_dimension() {
        let m = Metrics::new("receipts")
            .count("ReceiptsDelivered", 3)
            .value("SmsPriceUSD", Unit::None, 0.0174);
        let v = m.to_json(1_795_478_400_000);
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_795_478_400_000u64);
        assert_eq!(declared["Namespace"], "SmsRegistration");
        assert_eq!(declared["Dimensions"], json!([["Function"]]));
        assert_eq!(
            declared["Metrics"],
            json!([{"Name": "ReceiptsDelivered", "Unit": "Count"}, {"Name": "SmsPriceUSD", "Unit": "None"}])
        );
        assert_eq!(v["Function"], "receipts");
        assert_eq!(v["ReceiptsDelivered"], 3.0);
        assert_eq!(v["SmsPriceUSD"], 0.0174);
    }
}
