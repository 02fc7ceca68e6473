// A SLAM-style Java client on ClassCord's TLS port: the lines PROTOCOL.md shows.
// Usage: java TlsChat HOST PORT TRUSTSTORE.p12 PASSWORD NAME
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class TlsChat {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String name = args[4];

        // Trust the class CA, and nothing else.
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[2])) {
            trust.load(in, args[3].toCharArray());
        }
        TrustManagerFactory factory =
            TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, factory.getTrustManagers(), null);

        SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(host, port);
        // A raw SSLSocket checks no host name: without this line any certificate
        // signed by the CA would do, for any address.
        SSLParameters parameters = socket.getSSLParameters();
        parameters.setEndpointIdentificationAlgorithm("HTTPS");
        socket.setSSLParameters(parameters);
        socket.startHandshake();

        PrintWriter out = new PrintWriter(
            new OutputStreamWriter(socket.getOutputStream(), StandardCharsets.UTF_8), true);
        BufferedReader in = new BufferedReader(
            new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        out.println("{\"type\":\"register\",\"username\":\"" + name + "\",\"password\":\"s3cret\"}");
        System.out.println(in.readLine());
        out.println("{\"type\":\"login\",\"username\":\"" + name + "\",\"password\":\"s3cret\"}");
        System.out.println(in.readLine());
        out.println("{\"type\":\"message\",\"subtype\":\"global\",\"content\":\"Bonjour en TLS\"}");
        out.println("{\"type\":\"ping\"}");
        System.out.println(in.readLine());
        socket.close();
    }
}
