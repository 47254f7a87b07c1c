//! The request parameter map built from the query string and a form or JSON body.
