package dev.stompbus.examples.relay;

import java.security.Principal;

import org.springframework.context.annotation.Configuration;
import org.springframework.messaging.Message;
import org.springframework.messaging.MessageChannel;
import org.springframework.messaging.MessagingException;
import org.springframework.messaging.simp.config.ChannelRegistration;
import org.springframework.messaging.simp.config.MessageBrokerRegistry;
import org.springframework.messaging.simp.stomp.StompCommand;
import org.springframework.messaging.simp.stomp.StompHeaderAccessor;
import org.springframework.messaging.support.ChannelInterceptor;
import org.springframework.messaging.support.MessageHeaderAccessor;
import org.springframework.web.socket.config.annotation.EnableWebSocketMessageBroker;
import org.springframework.web.socket.config.annotation.StompEndpointRegistry;
import org.springframework.web.socket.config.annotation.WebSocketMessageBrokerConfigurer;

@Configuration
@EnableWebSocketMessageBroker
public class StompConfig implements WebSocketMessageBrokerConfigurer {

  private final RelayProperties relay;

  public StompConfig(RelayProperties relay) {
    this.relay = relay;
  }

  @Override
  public void registerStompEndpoints(StompEndpointRegistry registry) {
    registry.addEndpoint("/ws"); // plain WebSocket, no SockJS
  }

  @Override
  public void configureMessageBroker(MessageBrokerRegistry registry) {
    registry.setApplicationDestinationPrefixes("/app");
    registry
        .enableStompBrokerRelay("/topic", "/queue")
        .setRelayHost(relay.host())
        .setRelayPort(relay.port())
        // One "system" connection for messages from the app, one connection per client.
        .setSystemLogin(relay.login())
        .setSystemPasscode(relay.passcode())
        .setClientLogin(relay.login())
        .setClientPasscode(relay.passcode());
  }

  /**
   * Gives each WebSocket session a user, named by the CONNECT frame's {@code login} header,
   * so that {@code convertAndSendToUser} and {@code /user/queue/...} subscriptions work. A
   * real app would check the passcode (or use Spring Security) here.
   */
  @Override
  public void configureClientInboundChannel(ChannelRegistration registration) {
    registration.interceptors(new ChannelInterceptor() {
      @Override
      public Message<?> preSend(Message<?> message, MessageChannel channel) {
        StompHeaderAccessor accessor =
            MessageHeaderAccessor.getAccessor(message, StompHeaderAccessor.class);
        if (accessor != null && StompCommand.CONNECT.equals(accessor.getCommand())) {
          String login = accessor.getLogin();
          if (login == null || login.isBlank()) {
            throw new MessagingException("CONNECT needs a login header");
          }
          accessor.setUser(new LoginPrincipal(login));
        }
        return message;
      }
    });
  }

  /** The user of a session: just the name it connected with. */
  record LoginPrincipal(String name) implements Principal {
    @Override
    public String getName() {
      return name;
    }
  }
}
