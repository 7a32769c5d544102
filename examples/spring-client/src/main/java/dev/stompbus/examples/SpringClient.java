package dev.stompbus.examples;

import java.lang.reflect.Type;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.springframework.messaging.converter.ByteArrayMessageConverter;
import org.springframework.messaging.converter.CompositeMessageConverter;
import org.springframework.messaging.converter.MessageConverter;
import org.springframework.messaging.converter.StringMessageConverter;
import org.springframework.messaging.simp.stomp.ReactorNettyTcpStompClient;
import org.springframework.messaging.simp.stomp.StompCommand;
import org.springframework.messaging.simp.stomp.StompFrameHandler;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSession.Receiptable;
import org.springframework.messaging.simp.stomp.StompSessionHandlerAdapter;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;
import org.springframework.http.HttpHeaders;
import org.springframework.util.MimeType;
import org.springframework.util.MimeTypeUtils;
import org.springframework.web.socket.WebSocketExtension;
import org.springframework.web.socket.WebSocketHandler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.WebSocketSession;
import org.springframework.web.socket.client.standard.StandardWebSocketClient;
import org.springframework.web.socket.messaging.WebSocketStompClient;

/**
 * Talks to stompbus with Spring's two STOMP clients at once: {@link WebSocketStompClient}
 * (WebSocket, sub-protocol v12.stomp) and {@link ReactorNettyTcpStompClient} (STOMP over TCP).
 * Every step waits a bounded time; any failure prints {@code FAIL ...} and exits 1.
 *
 * <pre>
 * java -jar target/spring-client.jar [--host 127.0.0.1] [--ws-port 61614] [--tcp-port 61613]
 *                                    [--ws-path /stomp] [--inbox /queue/name]
 * </pre>
 * The same settings as environment variables: STOMPBUS_HOST, STOMPBUS_WS_PORT,
 * STOMPBUS_TCP_PORT, STOMPBUS_WS_PATH, STOMPBUS_INBOX, STOMPBUS_LOGIN, STOMPBUS_PASSCODE.
 */
public final class SpringClient {

  private static final long STEP_SECONDS = 10;
  private static final long WHOLE_RUN_SECONDS = 60;
  static final String TOPIC = "/topic/spring-client";
  static final String TEXT = "hello from Spring over WebSocket";

  private final Map<String, String> settings;
  private final ThreadPoolTaskScheduler scheduler = new ThreadPoolTaskScheduler();

  private SpringClient(Map<String, String> settings) {
    this.settings = settings;
    scheduler.setPoolSize(2);
    scheduler.setThreadNamePrefix("stomp-");
    scheduler.setDaemon(true);
    scheduler.initialize();
  }

  public static void main(String[] args) {
    // A last guard: whatever hangs, the process ends.
    Thread watchdog = new Thread(() -> {
      try {
        Thread.sleep(TimeUnit.SECONDS.toMillis(WHOLE_RUN_SECONDS));
        System.out.println("FAIL timeout: the whole run took over " + WHOLE_RUN_SECONDS + " s");
        Runtime.getRuntime().halt(2);
      } catch (InterruptedException ignored) {
        // the run finished first
      }
    });
    watchdog.setDaemon(true);
    watchdog.start();
    try {
      new SpringClient(settings(args)).run();
      System.out.println("OK all checks passed");
      System.exit(0);
    } catch (Throwable e) {
      System.out.println("FAIL " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  private void run() throws Exception {
    String host = settings.get("host");
    String wsUrl = "ws://" + host + ":" + settings.get("ws-port") + settings.get("ws-path");

    ProtocolRecordingClient webSocket = new ProtocolRecordingClient();
    WebSocketStompClient wsClient = new WebSocketStompClient(webSocket);
    wsClient.setMessageConverter(converter());
    wsClient.setTaskScheduler(scheduler); // needed for receipts and heart-beats
    wsClient.setReceiptTimeLimit(TimeUnit.SECONDS.toMillis(STEP_SECONDS));
    WebSocketHttpHeaders handshake = new WebSocketHttpHeaders();
    handshake.setSecWebSocketProtocol(List.of("v12.stomp", "v11.stomp"));
    Events wsEvents = new Events("ws");
    StompSession ws = await(
        wsClient.connectAsync(URI.create(wsUrl), handshake, connectHeaders(host), wsEvents),
        "ws connect to " + wsUrl);
    StompHeaders wsConnected = await(wsEvents.connected, "ws CONNECTED");
    say("ws connected to %s: sub-protocol=%s version=%s server=%s", wsUrl,
        webSocket.accepted.getNow("?"), wsConnected.getFirst("version"),
        wsConnected.getFirst("server"));

    ReactorNettyTcpStompClient tcpClient =
        new ReactorNettyTcpStompClient(host, Integer.parseInt(settings.get("tcp-port")));
    tcpClient.setMessageConverter(converter());
    tcpClient.setTaskScheduler(scheduler);
    tcpClient.setReceiptTimeLimit(TimeUnit.SECONDS.toMillis(STEP_SECONDS));
    Events tcpEvents = new Events("tcp");
    StompSession tcp = await(tcpClient.connectAsync(connectHeaders(host), tcpEvents),
        "tcp connect to " + host + ":" + settings.get("tcp-port"));
    StompHeaders tcpConnected = await(tcpEvents.connected, "tcp CONNECTED");
    say("tcp connected to %s:%s: version=%s server=%s", host, settings.get("tcp-port"),
        tcpConnected.getFirst("version"), tcpConnected.getFirst("server"));

    ws.setAutoReceipt(true);
    tcp.setAutoReceipt(true);
    topicBothWays(ws, tcp);
    queueWithClientAcks(ws, tcp);
    String inbox = settings.get("inbox");
    if (inbox != null && !inbox.isEmpty()) {
      Inbox in = subscribe(ws, inbox, "auto", "ws");
      Received m = in.next("a message on " + inbox);
      say("ws received from %s: %s", inbox, m.text());
    }

    ws.disconnect();
    tcp.disconnect();
    say("ws and tcp disconnected");
    tcpClient.shutdown();
  }

  /** Text from the WebSocket side, a binary body from the TCP side; both subscribers get both. */
  private void topicBothWays(StompSession ws, StompSession tcp) throws Exception {
    Inbox wsIn = subscribe(ws, TOPIC, "auto", "ws");
    Inbox tcpIn = subscribe(tcp, TOPIC, "auto", "tcp");

    send(ws, TOPIC, MimeTypeUtils.TEXT_PLAIN, TEXT, "ws");
    for (Inbox in : List.of(tcpIn, wsIn)) {
      Received m = in.next("the text message");
      check(TEXT.equals(m.text()), in.who + " got text " + m.text());
      say("%s received text on %s: %s", in.who, TOPIC, m.text());
    }

    byte[] binary = binaryBody();
    send(tcp, TOPIC, MimeTypeUtils.APPLICATION_OCTET_STREAM, binary, "tcp");
    for (Inbox in : List.of(wsIn, tcpIn)) {
      Received m = in.next("the binary message");
      check(Arrays.equals(binary, m.bytes()), in.who + " got different bytes");
      say("%s received binary on %s: %d bytes, identical", in.who, TOPIC, m.bytes().length);
    }
    await(receipted(wsIn.subscription.unsubscribe()), "ws UNSUBSCRIBE receipt");
    await(receipted(tcpIn.subscription.unsubscribe()), "tcp UNSUBSCRIBE receipt");
  }

  /**
   * Three jobs wait on a queue; a client-mode subscriber acks the second, which (STOMP 1.2
   * "SUBSCRIBE ack Header": client mode is cumulative) covers the first too. After it leaves,
   * only the third comes back, redelivered, to the next consumer.
   */
  private void queueWithClientAcks(StompSession ws, StompSession tcp) throws Exception {
    String queue = "/queue/spring-client-" + UUID.randomUUID().toString().substring(0, 8);
    for (int i = 1; i <= 3; i++) send(tcp, queue, MimeTypeUtils.TEXT_PLAIN, "job " + i, "tcp");
    say("tcp sent job 1..3 to %s with receipts", queue);

    Inbox first = subscribe(ws, queue, "client", "ws");
    Received job2 = null;
    for (int i = 1; i <= 3; i++) {
      Received m = first.next("job " + i);
      check(("job " + i).equals(m.text()), "ws expected job " + i + ", got " + m.text());
      check(m.headers.getAck() != null, "MESSAGE in client mode without an ack header");
      if (i == 2) job2 = m;
    }
    say("ws received job 1..3 in client ack mode");
    await(receipted(ws.acknowledge(job2.headers.getAck(), true)), "ACK receipt");
    say("ws acked job 2 (client mode: covers job 1), receipt received");
    await(receipted(first.subscription.unsubscribe()), "ws UNSUBSCRIBE receipt");

    Inbox second = subscribe(tcp, queue, "client-individual", "tcp");
    Received again = second.next("job 3 again");
    check("job 3".equals(again.text()), "tcp expected job 3 again, got " + again.text());
    check("true".equals(again.headers.getFirst("redelivered")), "job 3 without redelivered:true");
    await(receipted(tcp.acknowledge(again.headers.getAck(), true)), "ACK receipt");
    Received extra = second.poll(500);
    check(extra == null, "an acknowledged job came back: " + (extra == null ? "" : extra.text()));
    say("tcp received job 3 with redelivered=true and acked it; job 1 and 2 stayed acknowledged");
    await(receipted(second.subscription.unsubscribe()), "tcp UNSUBSCRIBE receipt");
  }

  private Inbox subscribe(StompSession session, String destination, String ack, String who)
      throws Exception {
    StompHeaders headers = new StompHeaders();
    headers.setDestination(destination);
    headers.setAck(ack);
    Inbox inbox = new Inbox(who);
    inbox.subscription = session.subscribe(headers, inbox);
    await(receipted(inbox.subscription), who + " SUBSCRIBE receipt for " + destination);
    say("%s subscribed to %s (ack %s), receipt received", who, destination, ack);
    return inbox;
  }

  private void send(StompSession session, String destination, MimeType type, Object body,
      String who) throws Exception {
    StompHeaders headers = new StompHeaders();
    headers.setDestination(destination);
    headers.setContentType(type);
    await(receipted(session.send(headers, body)), who + " SEND receipt for " + destination);
  }

  private static MessageConverter converter() {
    return new CompositeMessageConverter(
        List.of(new StringMessageConverter(), new ByteArrayMessageConverter()));
  }

  private StompHeaders connectHeaders(String host) {
    StompHeaders headers = new StompHeaders();
    headers.setHost(host); // STOMP 1.2 "CONNECT": clients MUST set the host header
    headers.setLogin(settings.get("login"));
    headers.setPasscode(settings.get("passcode"));
    return headers;
  }

  /** Every byte value, then a few more: not valid UTF-8, so a text path would garble it. */
  private static byte[] binaryBody() {
    byte[] body = new byte[300];
    for (int i = 0; i < body.length; i++) body[i] = (byte) (i * 7);
    body[0] = 0; // a NUL: only content-length keeps it inside the body
    return body;
  }

  private static CompletableFuture<Void> receipted(Receiptable receiptable) {
    CompletableFuture<Void> done = new CompletableFuture<>();
    receiptable.addReceiptTask(() -> done.complete(null));
    receiptable.addReceiptLostTask(() -> done.completeExceptionally(
        new IllegalStateException("no RECEIPT within " + STEP_SECONDS + " s")));
    return done;
  }

  private static <T> T await(CompletableFuture<T> future, String what) throws Exception {
    try {
      return future.get(STEP_SECONDS, TimeUnit.SECONDS);
    } catch (java.util.concurrent.TimeoutException e) {
      throw new IllegalStateException("timeout waiting for " + what, e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(what + " failed: " + e.getCause(), e.getCause());
    }
  }

  private static void check(boolean ok, String message) {
    if (!ok) throw new IllegalStateException(message);
  }

  private static void say(String format, Object... args) {
    System.out.println(String.format(format, args));
  }

  private static Map<String, String> settings(String[] args) {
    Map<String, String> s = new HashMap<>();
    String[][] defaults = {
      {"host", "STOMPBUS_HOST", "127.0.0.1"}, {"ws-port", "STOMPBUS_WS_PORT", "61614"},
      {"tcp-port", "STOMPBUS_TCP_PORT", "61613"}, {"ws-path", "STOMPBUS_WS_PATH", "/stomp"},
      {"inbox", "STOMPBUS_INBOX", ""}, {"login", "STOMPBUS_LOGIN", "guest"},
      {"passcode", "STOMPBUS_PASSCODE", "guest"},
    };
    for (String[] d : defaults) s.put(d[0], System.getenv().getOrDefault(d[1], d[2]));
    for (int i = 0; i < args.length; i++) {
      String name = args[i].startsWith("--") ? args[i].substring(2) : "";
      if (!s.containsKey(name) || i + 1 >= args.length) {
        throw new IllegalArgumentException("unknown option or missing value: " + args[i]);
      }
      s.put(name, args[++i]);
    }
    return s;
  }

  /** Spring's JSR-356 WebSocket client, remembering the sub-protocol the server chose. */
  private static final class ProtocolRecordingClient extends StandardWebSocketClient {
    final CompletableFuture<String> accepted = new CompletableFuture<>();

    @Override
    protected CompletableFuture<WebSocketSession> executeInternal(WebSocketHandler handler,
        HttpHeaders headers, URI uri, List<String> protocols, List<WebSocketExtension> extensions,
        Map<String, Object> attributes) {
      return super.executeInternal(handler, headers, uri, protocols, extensions, attributes)
          .whenComplete((session, error) -> {
            if (session != null) accepted.complete(String.valueOf(session.getAcceptedProtocol()));
          });
    }
  }

  /** The connection's CONNECTED headers and its errors. */
  private static final class Events extends StompSessionHandlerAdapter {
    private final String who;
    private final CompletableFuture<StompHeaders> connected = new CompletableFuture<>();

    Events(String who) {
      this.who = who;
    }

    @Override
    public void afterConnected(StompSession session, StompHeaders headers) {
      connected.complete(headers);
    }

    @Override
    public void handleFrame(StompHeaders headers, Object payload) {
      // Only ERROR frames arrive here (MESSAGEs go to their subscription's handler).
      System.out.println("FAIL " + who + " got ERROR " + headers.getFirst("message"));
      Runtime.getRuntime().halt(1);
    }

    @Override
    public Type getPayloadType(StompHeaders headers) {
      return String.class;
    }

    @Override
    public void handleException(StompSession session, StompCommand command,
        StompHeaders headers, byte[] payload, Throwable exception) {
      System.out.println("FAIL " + who + " could not handle " + command + ": " + exception);
      Runtime.getRuntime().halt(1);
    }

    @Override
    public void handleTransportError(StompSession session, Throwable exception) {
      // Before CONNECTED, connectAsync's future fails too and says more; after it, this is fatal.
      if (session.isConnected()) {
        System.out.println("FAIL " + who + " transport error: " + exception);
        Runtime.getRuntime().halt(1);
      }
    }
  }

  private record Received(StompHeaders headers, Object payload) {
    String text() {
      return payload instanceof byte[] b ? new String(b, StandardCharsets.UTF_8) : (String) payload;
    }

    byte[] bytes() {
      return payload instanceof byte[] b ? b : ((String) payload).getBytes(StandardCharsets.UTF_8);
    }
  }

  /** The MESSAGEs of one subscription, text bodies as String and others as byte[]. */
  private static final class Inbox implements StompFrameHandler {
    final String who;
    final BlockingQueue<Received> queue = new LinkedBlockingQueue<>();
    StompSession.Subscription subscription;

    Inbox(String who) {
      this.who = who;
    }

    @Override
    public Type getPayloadType(StompHeaders headers) {
      MimeType type = headers.getContentType();
      return type != null && "text".equals(type.getType()) ? String.class : byte[].class;
    }

    @Override
    public void handleFrame(StompHeaders headers, Object payload) {
      queue.add(new Received(headers, payload));
    }

    Received next(String what) throws InterruptedException {
      Received m = queue.poll(STEP_SECONDS, TimeUnit.SECONDS);
      if (m == null) throw new IllegalStateException(who + ": timeout waiting for " + what);
      return m;
    }

    Received poll(long millis) throws InterruptedException {
      return queue.poll(millis, TimeUnit.MILLISECONDS);
    }
  }
}
