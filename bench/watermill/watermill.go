package main

import (
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The whole Watermill setup is in this file, so the baseline can be judged
// in one read. It uses watermill-nats' pkg/nats, which its authors recommend
// for production over the beta pkg/jetstream; pkg/jetstream also runs one
// Consume callback at a time, so it cannot apply writes concurrently.

const (
	subjectPrefix = "wmbench."
	topic         = subjectPrefix + "memories"
	// durableName names the durable consumer and its queue group: every
	// subscriber joins the group, so each message goes to one of them.
	durableName = "wmbench-memory-api"

	// ackWait is how long the server waits for an ack before redelivering,
	// and how long the subscriber waits for the handler; jetbox uses 30s too.
	ackWait = 30 * time.Second
	// requestTimeout bounds one memory API call, as jetbox's default does.
	requestTimeout = 10 * time.Second
	// nakDelay is when a message whose retries all failed comes back.
	nakDelay = time.Second
)

// retry is the handler's retry policy: a few quick attempts in place, then
// a nack so the message comes back after nakDelay. The memory API is
// idempotent by key, so a retry never applies a write twice.
var retry = middleware.Retry{
	MaxRetries:          3,
	InitialInterval:     100 * time.Millisecond,
	MaxInterval:         time.Second,
	Multiplier:          2,
	RandomizationFactor: 0.5,
}

// publisherJetStream sets Nats-Msg-Id to the message UUID, so that a
// retried publish is stored once. The stream is provisioned by
// createStream, so the publisher does not look it up on every publish.
var publisherJetStream = wmnats.JetStreamConfig{
	AutoProvision: false,
	TrackMsgId:    true,
}

// newPublisher publishes synchronously, one JetStream ack per message: the
// only mode watermill-nats has.
func newPublisher(s settings, logger watermill.LoggerAdapter) (*wmnats.Publisher, error) {
	return wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:         s.NATSURL,
		NatsOptions: []nats.Option{nats.Name("watermill bench publisher")},
		Marshaler:   &wmnats.NATSMarshaler{},
		JetStream:   publisherJetStream,
	}, logger)
}

// newSubscriber makes s.Concurrency queue subscriptions on one durable push
// consumer. Each runs its messages one at a time, from delivery to ack, so
// the handlers running at once are the subscribers. Acks are explicit and
// manual: nats.go's auto-ack would ack a message whose handler had not
// finished when the subscriber's ack wait ran out.
//
// MaxAckPending is how many messages the server hands out before it waits
// for acks, spread at random over the subscriptions that exist. They are
// made one after another, so the first ones take up to that many each and
// then work through them alone: the server's default of 1000 leaves a long
// tail. Twice the subscribers keeps that short and leaves few subscribers
// without a message.
func newSubscriber(s settings, logger watermill.LoggerAdapter) (*wmnats.Subscriber, error) {
	return wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              s.NATSURL,
		NatsOptions:      []nats.Option{nats.Name("watermill bench subscriber")},
		QueueGroupPrefix: durableName,
		SubscribersCount: s.Concurrency,
		AckWaitTimeout:   ackWait,
		CloseTimeout:     10 * time.Second,
		Unmarshaler:      &wmnats.NATSMarshaler{},
		NakDelay:         wmnats.NewStaticDelay(nakDelay),
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			DurablePrefix: durableName,
			AckAsync:      s.AckAsync,
			SubscribeOptions: []nats.SubOpt{
				nats.DeliverAll(),
				nats.AckExplicit(),
				nats.ManualAck(),
				nats.AckWait(ackWait),
				nats.MaxAckPending(s.MaxAckPending),
			},
		},
	}, logger)
}

// newRouter runs handle for every message on the topic. Retry is outermost
// so that a panic, turned into an error by Recoverer, is retried like any
// other failure.
func newRouter(sub message.Subscriber, handle message.NoPublishHandlerFunc, logger watermill.LoggerAdapter) (*message.Router, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return nil, err
	}
	router.AddMiddleware(retry.Middleware, middleware.Recoverer)
	router.AddConsumerHandler("store-memory", topic, sub, handle)
	return router, nil
}

// reportSettings are the settings printed with the figures: the flags and
// the fixed choices above.
type reportSettings struct {
	settings
	Libraries        map[string]string         `json:"libraries"`
	Subject          string                    `json:"subject"`
	Durable          string                    `json:"durable_consumer"`
	Storage          jetstream.StorageType     `json:"storage"`
	Retention        jetstream.RetentionPolicy `json:"retention"`
	DedupeWindowS    float64                   `json:"dedupe_window_seconds"`
	TrackMsgID       bool                      `json:"track_msg_id"`
	PublishMode      string                    `json:"publish_mode"`
	ManualAck        bool                      `json:"manual_ack"`
	AckWaitSeconds   float64                   `json:"ack_wait_seconds"`
	RetryMax         int                       `json:"retry_max_retries"`
	RetryInitialMs   int64                     `json:"retry_initial_interval_ms"`
	RetryMaxMs       int64                     `json:"retry_max_interval_ms"`
	NakDelayMs       int64                     `json:"nak_delay_ms"`
	RequestTimeoutS  float64                   `json:"request_timeout_seconds"`
	MaxIdleConnsHost int                       `json:"http_max_idle_conns_per_host"`
}

func describe(s settings) reportSettings {
	stream := streamConfig(s.Stream)
	return reportSettings{
		settings:         s,
		Libraries:        libraryVersions(),
		Subject:          topic,
		Durable:          durableName,
		Storage:          stream.Storage,
		Retention:        stream.Retention,
		DedupeWindowS:    stream.Duplicates.Seconds(),
		TrackMsgID:       publisherJetStream.TrackMsgId,
		PublishMode:      "sync",
		ManualAck:        true,
		AckWaitSeconds:   ackWait.Seconds(),
		RetryMax:         retry.MaxRetries,
		RetryInitialMs:   retry.InitialInterval.Milliseconds(),
		RetryMaxMs:       retry.MaxInterval.Milliseconds(),
		NakDelayMs:       nakDelay.Milliseconds(),
		RequestTimeoutS:  requestTimeout.Seconds(),
		MaxIdleConnsHost: s.Concurrency,
	}
}

// libraryVersions are the versions of Watermill and nats.go the binary was
// built with.
func libraryVersions() map[string]string {
	versions := map[string]string{}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return versions
	}
	for _, dep := range info.Deps {
		switch dep.Path {
		case "github.com/ThreeDotsLabs/watermill", "github.com/ThreeDotsLabs/watermill-nats/v2", "github.com/nats-io/nats.go":
			versions[dep.Path] = dep.Version
		}
	}
	return versions
}
