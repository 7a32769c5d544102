package dev.stompbus.examples.relay;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * Where stompbus listens for STOMP over TCP, and the credentials the relay presents
 * (stompbus accepts any when it has no users configured). Set as {@code stompbus.relay.*}
 * properties or {@code STOMPBUS_RELAY_HOST}, {@code STOMPBUS_RELAY_PORT}, … variables.
 */
@ConfigurationProperties("stompbus.relay")
public record RelayProperties(String host, int port, String login, String passcode) {}
