//! A client that is not fleetsim, for playing the phone by hand in tests: the `mqtt5` crate's
//! own client, like a trainee's MQTTX.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqtt5::{ConnectOptions, MqttClient, PublishOptions, QoS};

/// What came back on the Response Topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub payload: String,
    pub correlation: Option<Vec<u8>>,
}

/// Sends one request the way the article's demo does (subscribe to the Response Topic first,
/// then publish with Response Topic and Correlation Data) and waits up to 5 s for answers;
/// returns every answer that came on the Response Topic meanwhile.
pub fn ask(
    addr: SocketAddr,
    client_id: &str,
    topic: &str,
    response_topic: &str,
    correlation: &[u8],
    payload: &str,
) -> Vec<Answer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the hand client");
    runtime.block_on(async {
        let client = MqttClient::with_options(ConnectOptions::new(client_id));
        client
            .connect(&format!("mqtt://{addr}"))
            .await
            .expect("the hand client connects");
        let answers = Arc::new(Mutex::new(Vec::new()));
        let seen = answers.clone();
        client
            .subscribe(response_topic, move |message| {
                seen.lock().unwrap().push(Answer {
                    payload: String::from_utf8_lossy(&message.payload).into_owned(),
                    correlation: message.properties.correlation_data.clone(),
                });
            })
            .await
            .expect("the hand client subscribes");
        let mut options = PublishOptions {
            qos: QoS::AtLeastOnce,
            ..PublishOptions::default()
        };
        options.properties.response_topic = Some(response_topic.to_owned());
        options.properties.correlation_data = Some(correlation.to_vec());
        client
            .publish_with_options(topic, payload.as_bytes().to_vec(), options)
            .await
            .expect("the hand client publishes");
        for _ in 0..50 {
            if !answers.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A little longer, for a second answer that should not come.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = client.disconnect().await;
        answers.lock().unwrap().clone()
    })
}

/// Publishes one message at QoS 1 to a broker on a loopback port and disconnects, like
/// `mosquitto_pub`: as `client_id` (a fresh one if None), with Correlation Data if given.
pub fn publish(
    port: u16,
    client_id: Option<&str>,
    topic: &str,
    payload: &str,
    correlation: Option<&[u8]>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the hand client");
    runtime.block_on(async {
        let id = client_id.map_or_else(|| format!("hand-{}", std::process::id()), str::to_owned);
        let client = MqttClient::with_options(ConnectOptions::new(id));
        client
            .connect(&format!("mqtt://127.0.0.1:{port}"))
            .await
            .expect("the hand client connects");
        let mut options = PublishOptions {
            qos: QoS::AtLeastOnce,
            ..PublishOptions::default()
        };
        options.properties.correlation_data = correlation.map(<[u8]>::to_vec);
        client
            .publish_with_options(topic, payload.as_bytes().to_vec(), options)
            .await
            .expect("the hand client publishes");
        let _ = client.disconnect().await;
    });
}

/// Subscribes to `filter` and collects (topic, Correlation Data) of every message for `during`.
pub fn watch(addr: SocketAddr, filter: &str, during: Duration) -> Vec<(String, Option<Vec<u8>>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the watcher");
    runtime.block_on(async {
        let client = MqttClient::with_options(ConnectOptions::new("watcher"));
        client
            .connect(&format!("mqtt://{addr}"))
            .await
            .expect("the watcher connects");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        client
            .subscribe(filter, move |m| {
                into.lock()
                    .unwrap()
                    .push((m.topic.clone(), m.properties.correlation_data.clone()));
            })
            .await
            .expect("the watcher subscribes");
        tokio::time::sleep(during).await;
        let _ = client.disconnect().await;
        seen.lock().unwrap().clone()
    })
}
