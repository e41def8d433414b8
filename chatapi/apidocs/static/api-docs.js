// Starts Swagger UI on /api/docs. A file of its own, not an inline script: the page's
// Content-Security-Policy runs scripts from the service only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Swagger UI would otherwise send the document to an online validator for a badge.
    validatorUrl: null,
  });
}());
