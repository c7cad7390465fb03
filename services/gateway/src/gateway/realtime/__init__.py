"""Socket.IO: connections, client events, and fan-out of Kafka events to rooms."""
