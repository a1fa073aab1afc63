"""Everything that talks to Kafka: client options and TLS, topics, records, publishing,
transactions, commits, the client's logs, and the consumers' views of partitions."""
