package dev.stompbus.examples.relay;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;
import org.springframework.boot.web.server.context.WebServerInitializedEvent;
import org.springframework.context.event.EventListener;
import org.springframework.messaging.simp.broker.BrokerAvailabilityEvent;

/**
 * A Spring Boot app whose STOMP broker is stompbus: clients connect to this app's
 * WebSocket endpoint ({@code /ws}); {@code /topic} and {@code /queue} frames go through
 * Spring's broker relay to stompbus over TCP; {@code /app} frames reach
 * {@link GreetingController}.
 */
@SpringBootApplication
@ConfigurationPropertiesScan
public class RelayApplication {

  public static void main(String[] args) {
    SpringApplication.run(RelayApplication.class, args);
  }

  /** One line that scripts can wait for (the port is random with server.port=0). */
  @EventListener
  public void onWebServer(WebServerInitializedEvent event) {
    System.out.println("spring-relay listening on port " + event.getWebServer().getPort());
  }

  /** The relay's "system" connection to stompbus came up or went down. */
  @EventListener
  public void onBroker(BrokerAvailabilityEvent event) {
    System.out.println("spring-relay broker " + (event.isBrokerAvailable() ? "available" : "unavailable"));
  }
}
