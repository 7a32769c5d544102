/**
 * `stompbus/kafka`: cluster mode, the broker's seams (`Fanout`) on Kafka.
 * Import it only for cluster mode; an embedded broker never needs it. Even
 * here kafkajs is not loaded on import but when the fan-out first connects
 * (or never, when a {@link KafkaClient} of your own is passed as `client`).
 *
 * ```ts
 * import { KafkaFanout } from 'stompbus/kafka';
 * const fanout = new KafkaFanout({ brokers: 'kafka-1:9092,kafka-2:9092' });
 * ```
 */
export {
  type ConsumedRecord,
  type ConsumeOptions,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
  type KafkajsClientOptions,
  type Positions,
  type ProducedRecord,
  type TopicSpec,
} from './cluster/kafka-client.js';
export { KafkaFanout } from './cluster/kafka-fanout.js';
export {
  DEFAULT_KAFKA_FANOUT_OPTIONS,
  type KafkaFanoutOptions,
  type RecordFormat,
} from './cluster/kafka-options.js';
export {
  CONSUMED_HEADER,
  KAFKA_HEADERS,
  MESSAGE_ID_HEADER,
  PACKED_HEADER,
} from './cluster/records.js';
