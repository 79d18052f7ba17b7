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
