package dev.stompbus.examples.relay;

import java.security.Principal;

import org.springframework.messaging.handler.annotation.Header;
import org.springframework.messaging.handler.annotation.MessageMapping;
import org.springframework.messaging.handler.annotation.Payload;
import org.springframework.messaging.simp.SimpMessageHeaderAccessor;
import org.springframework.messaging.simp.SimpMessagingTemplate;
import org.springframework.stereotype.Controller;

/** Handles SENDs to {@code /app/...}; everything it sends travels through stompbus. */
@Controller
public class GreetingController {

  private final SimpMessagingTemplate messaging;

  public GreetingController(SimpMessagingTemplate messaging) {
    this.messaging = messaging;
  }

  /** Broadcasts to {@code /topic/greetings} and answers the sender alone. */
  @MessageMapping("/greet")
  public void greet(@Payload String text, Principal user) {
    messaging.convertAndSend("/topic/greetings", user.getName() + " says: " + text);
    messaging.convertAndSendToUser(user.getName(), "/queue/replies",
        "hello " + user.getName() + ", you said: " + text);
  }

  /**
   * Tells the sender its session id: Spring relays {@code /user/queue/replies} of that
   * session as {@code /queue/replies-user<id>}, an ordinary stompbus queue.
   */
  @MessageMapping("/whoami")
  public void whoami(Principal user,
      @Header(SimpMessageHeaderAccessor.SESSION_ID_HEADER) String sessionId) {
    messaging.convertAndSendToUser(user.getName(), "/queue/replies", "session " + sessionId);
  }
}
